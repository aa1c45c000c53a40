//! `allocshim::MiMalloc` as the global allocator; see common/exercise.rs.
#[path = "common/exercise.rs"]
mod exercise;

#[global_allocator]
static GLOBAL: allocshim::MiMalloc = allocshim::MiMalloc;

fn main() {
    exercise::run("MiMalloc", allocshim::Backend::Mimalloc);
}
