//! Errno names as C spells them, for `error:<ERRNO>` reasons and messages.

pub fn errno_name(errno: u32) -> String {
    let name = match errno as i32 {
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::ENETDOWN => "ENETDOWN",
        libc::EPIPE => "EPIPE",
        libc::EPROTO => "EPROTO",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::ENOTCONN => "ENOTCONN",
        libc::EAGAIN => "EAGAIN",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EMFILE => "EMFILE",
        _ => return format!("E{errno}"),
    };
    name.to_string()
}

/// The errno name of an I/O error where it has one, else its message.
pub fn io_error_name(err: &std::io::Error) -> String {
    err.raw_os_error()
        .map_or_else(|| err.to_string(), |e| errno_name(e as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_unknown_numbers() {
        assert_eq!(errno_name(110), "ETIMEDOUT");
        assert_eq!(errno_name(4242), "E4242");
        assert_eq!(
            io_error_name(&std::io::Error::from_raw_os_error(libc::ECONNREFUSED)),
            "ECONNREFUSED"
        );
    }
}
