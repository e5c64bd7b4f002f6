//! Control-socket requests: any bytes parse to a request or an error text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xbond_core::request::parse_request;

fuzz_target!(|data: &[u8]| {
    let _ = parse_request(data);
});
