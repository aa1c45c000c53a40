//! `allocshim::JeMalloc` as the global allocator; see common/exercise.rs.
#[path = "common/exercise.rs"]
mod exercise;

#[global_allocator]
static GLOBAL: allocshim::JeMalloc = allocshim::JeMalloc;

fn main() {
    exercise::run("JeMalloc", allocshim::Backend::Jemalloc);
}
