//! The control socket's requests, read without I/O: one line, at most
//! [`MAX_REQUEST`] bytes with its newline. The daemon answers what parses
//! and returns the error text (naming what is valid) for the rest.

/// The longest request line, newline included.
pub const MAX_REQUEST: usize = 4096;

/// A request the control socket answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The bond's status (JSON).
    Status,
    /// `active-slave IF`: make IF the active slave.
    ActiveSlave(String),
    /// `set OPTION VALUE [OPTION VALUE ...]`: change kernel bonding
    /// options together (as `ip link set bond0 type bond ...` does), each
    /// value as sysfs takes it.
    Set(Vec<(String, String)>),
    /// `enslave IF`: add IF as a slave.
    Enslave(String),
    /// `release IF`: remove the slave IF.
    Release(String),
}

impl Request {
    /// Whether the request changes the bond (root only).
    pub fn changes(&self) -> bool {
        !matches!(self, Request::Status)
    }
}

const VALID: &str =
    "status, active-slave IF, set OPTION VALUE [OPTION VALUE ...], enslave IF, release IF";

/// Reads one request line as it came off the socket (`bytes` ends with the
/// newline). The error names what was wrong and what is valid.
pub fn parse_request(bytes: &[u8]) -> Result<Request, String> {
    if bytes.len() > MAX_REQUEST || bytes.last() != Some(&b'\n') {
        return Err(format!(
            "a request is one line of at most {MAX_REQUEST} bytes ending in a newline"
        ));
    }
    let line = String::from_utf8_lossy(bytes);
    let mut words = line.split_whitespace();
    let verb = words.next().unwrap_or("");
    let rest: Vec<&str> = words.collect();
    let short = |s: &str| s.chars().take(64).collect::<String>();
    let iface = |what: &str| -> Result<String, String> {
        match rest.as_slice() {
            [name]
                if !name.is_empty()
                    && name.len() < 16
                    && name.chars().all(|c| c.is_ascii_graphic() && c != '/') =>
            {
                Ok((*name).to_string())
            }
            _ => Err(format!(
                "{what} takes one interface name (at most 15 characters, no '/'), got {:?}",
                short(&rest.join(" "))
            )),
        }
    };
    match verb {
        "status" if rest.is_empty() => Ok(Request::Status),
        "active-slave" => iface("active-slave").map(Request::ActiveSlave),
        "enslave" => iface("enslave").map(Request::Enslave),
        "release" => iface("release").map(Request::Release),
        "set" if !rest.is_empty() && rest.len().is_multiple_of(2) => Ok(Request::Set(
            rest.chunks(2)
                .map(|p| (p[0].to_string(), p[1].to_string()))
                .collect(),
        )),
        "set" => Err(format!(
            "set takes options and values in pairs (e.g. set miimon 100, or set \
             arp_interval 200 arp_ip_target 10.0.0.1), got {:?}",
            short(&rest.join(" "))
        )),
        _ => Err(format!(
            "unknown request {:?}; valid: {VALID}",
            short(line.trim())
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
            e.contains("\"reboot\"") && e.contains("valid: status, active-slave IF"),
            "{e}"
        );
        assert_eq!(
            parse_request(b"set miimon 200 updelay 400\n"),
            Ok(Request::Set(vec![
                ("miimon".into(), "200".into()),
                ("updelay".into(), "400".into())
            ]))
        );
        assert_eq!(
            parse_request(b"active-slave eno2\n"),
            Ok(Request::ActiveSlave("eno2".into()))
        );
        assert!(parse_request(b"set miimon\n")
            .unwrap_err()
            .contains("in pairs"));
        assert!(parse_request(b"set\n").unwrap_err().contains("in pairs"));
        assert!(parse_request(b"active-slave a/b\n")
            .unwrap_err()
            .contains("interface name"));
        assert!(parse_request(b"active-slave\n")
            .unwrap_err()
            .contains("interface name"));
        assert!(!Request::Status.changes());
        assert!(Request::ActiveSlave("x".into()).changes());
        assert!(parse_request(b"status").unwrap_err().contains("newline"));
        let long = vec![b'x'; MAX_REQUEST + 1];
        assert!(parse_request(&long).unwrap_err().contains("4096 bytes"));
        assert!(parse_request(&[0xff, 0xfe, b'\n']).is_err());
    }
}
