//! `allocshim::System` as the global allocator; see common/exercise.rs.
#[path = "common/exercise.rs"]
mod exercise;

#[global_allocator]
static GLOBAL: allocshim::System = allocshim::System;

fn main() {
    exercise::run("System", allocshim::Backend::System);
}
