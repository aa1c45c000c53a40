//! `allocshim::SnMalloc` as the global allocator; see common/exercise.rs.
#[path = "common/exercise.rs"]
mod exercise;

#[global_allocator]
static GLOBAL: allocshim::SnMalloc = allocshim::SnMalloc;

fn main() {
    exercise::run("SnMalloc", allocshim::Backend::Snmalloc);
}
