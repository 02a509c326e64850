//! Errors a caller branches on, and the exit code each one means.
//!
//! A usage error (bad CIDR, unknown pid, a value out of the kernel's range)
//! exits 2 like clap's own errors; anything else exits 1. Code anywhere below
//! the command line raises [`usage`]; only `main` turns it into a code.

/// A usage error found after clap parsed the line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_others_1() {
        assert_eq!(exit_code_for(&usage("bad cidr")), 2);
        assert_eq!(exit_code_for(&anyhow::anyhow!("boom")), 1);
        assert_eq!(exit_code_for(&usage("inner").context("outer")), 2);
    }
}
