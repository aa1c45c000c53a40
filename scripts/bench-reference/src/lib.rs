//! Nothing of its own: building this crate makes cargo build the allocators' static
//! libraries with their override options; `scripts/bench` links each into a `.so`.
extern crate libmimalloc_sys;
extern crate tikv_jemalloc_sys;
