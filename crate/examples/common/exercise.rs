// Shared by the examples, each of which installs one allocshim type as the global
// allocator and then calls `run`. Exercises what a Rust program does to its
// allocator, checks every result, and shows which backend's own counters moved.
use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::collections::HashMap;
use std::sync::mpsc;
use std::thread;

use allocshim::{usage, Backend};

fn check(ok: bool, what: &str) {
    if !ok {
        eprintln!("FAIL: {what}");
        std::process::exit(1);
    }
}

/// Collections under churn on 4 threads, with blocks handed to another thread to be
/// freed there.
fn threads() {
    let (tx, rx) = mpsc::channel::<Vec<String>>();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut map: HashMap<u64, String> = HashMap::new();
                for i in 0..20_000u64 {
                    map.insert(i % 997, format!("{t}-{i}-{}", "x".repeat((i % 300) as usize)));
                    if i % 100 == 0 {
                        let batch: Vec<String> = (0..50).map(|k| format!("{t}:{i}:{k}")).collect();
                        tx.send(batch).unwrap();
                    }
                }
                for (k, v) in &map {
                    check(
                        v.starts_with(&format!("{t}-")) && v.split('-').nth(1).unwrap().parse::<u64>().unwrap() % 997 == *k,
                        "map contents",
                    );
                }
            })
        })
        .collect();
    drop(tx);
    let mut received = 0;
    for batch in rx {
        check(batch.len() == 50 && batch[49].ends_with(":49"), "batch contents");
        received += batch.len(); // freed here, on another thread than its allocator
    }
    for w in workers {
        w.join().unwrap();
    }
    check(received == 4 * 200 * 50, "all batches received");
}

/// Positions written and checked in a block of `len` bytes: both ends and a stride
/// through the middle (every byte would make the debug build crawl over 100 MB).
fn probes(len: usize) -> impl Iterator<Item = usize> {
    let ends = (0..len.min(64)).chain(len.saturating_sub(64)..len);
    ends.chain((0..len).step_by(4093))
}

/// Every alignment up to 4 MiB (past the 64 KiB and page-size classes), small and
/// large sizes; realloc growing and shrinking keeps contents and alignment;
/// alloc_zeroed on memory just dirtied and freed is zero.
fn layouts() {
    for shift in 0..=22 {
        let align = 1usize << shift;
        for size in [1, 7, align, align + 1, 3 * align, 100_000] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: every layout is valid (checked by `from_size_align`) with a
            // non-zero size, and every new size is non-zero and far below isize::MAX;
            // `check` exits the process on a NULL, so only non-NULL blocks are
            // written, read (at `probes` below their current size) and handed back,
            // always with the layout they currently have, each exactly once.
            unsafe {
                let p = alloc(l);
                check(!p.is_null() && (p as usize).is_multiple_of(align), "aligned alloc");
                std::ptr::write_bytes(p, 0xAA, size);
                dealloc(p, l);
                let z = alloc_zeroed(l);
                check(!z.is_null() && (z as usize).is_multiple_of(align), "aligned alloc_zeroed");
                check(probes(size).all(|i| *z.add(i) == 0), "alloc_zeroed is zero on recycled memory");
                probes(size).for_each(|i| *z.add(i) = i as u8);
                let mut p = z;
                let mut cur = size;
                for new in [size * 2 + 5, size * 9, size / 2 + 1, 1] {
                    p = realloc(p, Layout::from_size_align(cur, align).unwrap(), new);
                    check(!p.is_null() && (p as usize).is_multiple_of(align), "realloc keeps alignment");
                    let kept = cur.min(new);
                    // The head and the stride below `kept` were all written before.
                    check((0..kept.min(64)).chain((0..kept).step_by(4093)).all(|i| *p.add(i) == i as u8), "realloc keeps contents");
                    probes(new).for_each(|i| *p.add(i) = i as u8);
                    cur = new;
                }
                dealloc(p, Layout::from_size_align(cur, align).unwrap());
            }
        }
    }
    // Zero-sized types never reach the allocator; their pointers are dangling but aligned.
    let v: Vec<()> = Vec::with_capacity(1000);
    check(v.capacity() == usize::MAX, "Vec<()> has no allocation");
    let b = Box::new([0u64; 0]);
    check((b.as_ptr() as usize).is_multiple_of(8), "Box<[u64; 0]> is aligned");
}

/// Which backend's own counters move when 64 MiB is allocated and touched: the
/// served one's, and no other's. mimalloc keeps no figure (`allocshim::Usage`): its
/// own ownership check on the blocks stands in for its counter.
fn served_by() -> Option<Backend> {
    let all = [Backend::Jemalloc, Backend::Mimalloc, Backend::Snmalloc, Backend::System];
    let figure = |b: Backend| usage(b).map(|u| u.allocated.or(u.resident).unwrap_or(0)).unwrap_or(0);
    let before: Vec<usize> = all.iter().map(|&b| figure(b)).collect();
    let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1 << 20]).collect();
    let after: Vec<usize> = all.iter().map(|&b| figure(b)).collect();
    check(blocks.iter().enumerate().all(|(i, b)| b[12345] == i as u8), "blocks");
    let mut moved: Vec<Backend> =
        all.iter().zip(before.iter().zip(&after)).filter(|(_, (b, a))| **a >= **b + (48 << 20)).map(|(&x, _)| x).collect();
    // SAFETY: mi_is_in_heap_region only compares the address with mimalloc's own
    // segment map; it reads nothing at the pointer.
    if blocks.iter().all(|b| unsafe { libmimalloc_sys::mi_is_in_heap_region(b.as_ptr().cast()) }) {
        moved.push(Backend::Mimalloc);
    }
    if moved.len() == 1 {
        Some(moved[0])
    } else {
        eprintln!("counters that moved: {moved:?}");
        None
    }
}

/// `bench`: a single-thread churn of mixed small Vec<u8> sizes, ns per
/// allocation+free, as an `allocshim-metric` line (read by `allocshim compare`).
fn bench() {
    const SLOTS: usize = 4096;
    let ops = 5_000_000u64;
    let mut slots: Vec<Vec<u8>> = (0..SLOTS).map(|_| Vec::new()).collect();
    let mut x = 42u64;
    let start = std::time::Instant::now();
    for i in 0..ops {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let size = if x & 15 == 0 { 512 + (x >> 8) as usize % 3584 } else { 8 + (x >> 8) as usize % 248 };
        let mut v = Vec::with_capacity(size);
        v.push(i as u8);
        slots[(x >> 40) as usize % SLOTS] = v;
    }
    let ns = start.elapsed().as_nanos() as f64 / ops as f64;
    check(slots.iter().filter(|v| !v.is_empty()).count() > SLOTS / 2, "slots used");
    println!("allocshim-metric ns_per_op {ns:.3} ns");
}

pub fn run(name: &str, backend: Backend) {
    if std::env::args().nth(1).as_deref() == Some("bench") {
        bench();
        return;
    }
    threads();
    layouts();
    let served = served_by();
    let served = served.map(|b| b.name().to_str().unwrap()).unwrap_or("unclear");
    // Which figures the backend gives, as liballocshim.so's ALLOCSHIM_STATS line names them.
    let u = usage(backend).unwrap_or_default();
    let figures: Vec<&str> =
        [("allocated", u.allocated), ("resident", u.resident)].iter().filter(|(_, v)| v.is_some()).map(|(k, _)| *k).collect();
    let figures = if figures.is_empty() { "none".to_string() } else { figures.join("+") };
    println!(
        "{name}: backend={} served={served} version={} figures={figures}",
        backend.name().to_str().unwrap(),
        allocshim::version(backend).unwrap_or("-")
    );
}
