//! How many worker threads a command starts when the user leaves it to waflog.

/// Most worker threads chosen automatically: beyond four, the reader or writer
/// thread that feeds them is the bound.
pub const MAX_AUTO: usize = 4;

/// Worker threads for `asked` (0: one per core, at most [`MAX_AUTO`]; one when the
/// number of cores cannot be read).
pub fn workers(asked: usize) -> usize {
    match asked {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_AUTO)),
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_the_cores_up_to_the_cap_and_a_number_is_kept() {
        let auto = workers(0);
        assert!((1..=MAX_AUTO).contains(&auto), "{auto}");
        assert_eq!(workers(3), 3);
        assert_eq!(workers(64), 64);
    }
}
