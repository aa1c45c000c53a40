//! Lines of text printed with raw `write(2)`: assembled in a fixed buffer (what does
//! not fit is cut, never allocated), because they are printed from inside an allocator.
use crate::errno::{errno, set_errno};

const CAP: usize = 480;

/// A line of text in a fixed buffer; what does not fit is cut, never allocated.
#[derive(Clone, Copy)]
pub struct Line {
    buf: [u8; CAP],
    len: usize,
}

impl Default for Line {
    fn default() -> Line {
        Line::new()
    }
}

impl Line {
    pub const fn new() -> Line {
        Line { buf: [0; CAP], len: 0 }
    }
    pub fn bytes(&mut self, s: &[u8]) -> &mut Line {
        let n = s.len().min(CAP - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Line {
        self.bytes(s.as_bytes())
    }
    // Not in `.allocshim.cold`: every start-up under jemalloc or mimalloc writes its
    // options' numbers (init::record), and this small function would fault the cold
    // segment in for that alone.
    #[inline(never)]
    pub fn num(&mut self, mut n: u64) -> &mut Line {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.bytes(&digits[i..])
    }
    /// Milliseconds as seconds, without trailing zeros: "1", "0.2", "0.05".
    #[inline(never)]
    #[link_section = ".allocshim.cold"] // printed only when asked (verbose, warnings)
    pub fn seconds(&mut self, ms: u32) -> &mut Line {
        self.num(u64::from(ms / 1000));
        let f = ms % 1000;
        let digits = [b'.', b'0' + (f / 100) as u8, b'0' + (f / 10 % 10) as u8, b'0' + (f % 10) as u8];
        let kept = digits.iter().rposition(|&d| d != b'0').unwrap_or(0);
        self.bytes(&digits[..if kept == 0 { 0 } else { kept + 1 }])
    }
    /// Bytes as a short human figure: "812 KiB", "3.4 MiB".
    #[inline(never)]
    #[link_section = ".allocshim.cold"] // code a start-up runs only when asked: shim/build.rs
    pub fn size(&mut self, n: u64) -> &mut Line {
        const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
        let mut unit = 0;
        let mut scaled = n * 10;
        while scaled >= 10240 && unit < UNITS.len() - 1 {
            scaled /= 1024;
            unit += 1;
        }
        self.num(scaled / 10);
        if unit > 0 && scaled < 1000 {
            self.str(".").num(scaled % 10);
        }
        self.str(" ").str(UNITS[unit])
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn stderr(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: write(2) only reads `rest.len()` bytes from `rest`, a live slice.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n > 0 {
            rest = &rest[n as usize..];
        } else if n < 0 && errno() == libc::EINTR {
            continue;
        } else {
            return;
        }
    }
}

/// One `allocshim: ...` line on stderr. Keeps errno as it was: warnings are printed
/// from inside malloc, whose caller may be looking at errno.
pub fn warn(msg: &Line) {
    let saved = errno();
    let mut l = Line::new();
    l.str("allocshim: ").bytes(msg.as_bytes());
    l.len = l.len.min(CAP - 1);
    l.buf[l.len] = b'\n';
    l.len += 1;
    stderr(l.as_bytes());
    set_errno(saved);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_written_without_trailing_zeros() {
        for (ms, want) in [
            (0, "0"),
            (1000, "1"),
            (1500, "1.5"),
            (200, "0.2"),
            (50, "0.05"),
            (10, "0.01"),
            (125, "0.125"),
            (3_600_000, "3600"),
            (1, "0.001"),
        ] {
            assert_eq!(Line::new().seconds(ms).as_bytes(), want.as_bytes(), "{ms} ms");
        }
    }
}
