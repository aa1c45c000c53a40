//! `allocshim::Auto` as the global allocator; see common/exercise.rs.
#[path = "common/exercise.rs"]
mod exercise;

#[global_allocator]
static GLOBAL: allocshim::Auto = allocshim::Auto;

fn main() {
    exercise::run("Auto", allocshim::Auto::backend());
}
