//! What a backend's own figures mean: one definition for `ALLOCSHIM_STATS`,
//! `malloc_stats`, the library's `allocshim_usage` query and the crate's
//! `allocshim::usage`. Each backend's reading of them is
//! written once, in the `allocshim-backends` crate.

/// A backend's own figures, where it keeps them; `None` where it cannot give one.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Bytes in live allocations, as the allocator counts them (its size classes
    /// included, its free lists and metadata not). jemalloc: `stats.allocated`;
    /// glibc: `mallinfo2` `uordblks + hblkhd`. mimalloc and snmalloc keep no such
    /// count in their release builds: `None`.
    pub allocated: Option<usize>,
    /// Bytes of memory the allocator holds from the OS for its own use and has put to
    /// use (live blocks, free lists, caches and metadata; not address space merely
    /// reserved, nor mapped ahead of any use). jemalloc: `stats.resident`; snmalloc:
    /// its current usage (`sn_rust_statistics`: chunks taken from the OS); glibc:
    /// `mallinfo2` `arena + hblkhd` (heaps plus mmapped blocks). mimalloc: `None`:
    /// its `committed` figure includes whole arenas it maps ahead of use (1 GiB on
    /// Linux at the first allocation), so it is not this figure.
    pub resident: Option<usize>,
}
