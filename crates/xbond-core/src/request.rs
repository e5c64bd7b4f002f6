//! The control socket's requests, read without I/O: one line, at most
//! [`MAX_REQUEST`] bytes with its newline. The daemon answers what parses
//! and returns the error text (naming what is valid) for the rest.

/// The longest request line, newline included.
pub const MAX_REQUEST: usize = 4096;

/// A request the control socket answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The bond's status (JSON).
    Status,
}

/// Reads one request line as it came off the socket (`bytes` ends with the
/// newline). The error names what was wrong and what is valid.
pub fn parse_request(bytes: &[u8]) -> Result<Request, String> {
    if bytes.len() > MAX_REQUEST || bytes.last() != Some(&b'\n') {
        return Err(format!(
            "a request is one line of at most {MAX_REQUEST} bytes ending in a newline"
        ));
    }
    let line = String::from_utf8_lossy(bytes);
    match line.trim() {
        "status" => Ok(Request::Status),
        other => Err(format!(
            "unknown request {:?}; valid: status",
            other.chars().take(64).collect::<String>()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parses_and_the_rest_is_named() {
        assert_eq!(parse_request(b"status\n"), Ok(Request::Status));
        assert_eq!(parse_request(b"  status \r\n"), Ok(Request::Status));
        let e = parse_request(b"reboot\n").unwrap_err();
        assert!(
            e.contains("\"reboot\"") && e.contains("valid: status"),
            "{e}"
        );
        assert!(parse_request(b"status").unwrap_err().contains("newline"));
        let long = vec![b'x'; MAX_REQUEST + 1];
        assert!(parse_request(&long).unwrap_err().contains("4096 bytes"));
        assert!(parse_request(&[0xff, 0xfe, b'\n']).is_err());
    }
}
