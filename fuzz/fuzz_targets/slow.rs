//! LACPDU and Marker PDU parsing, and the round trip: a parsed PDU emitted
//! again parses to the same PDU.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xbond_core::lacp::wire::{parse, SlowPdu};
use xbond_core::options::MacAddr;

fuzz_target!(|data: &[u8]| {
    let Ok(pdu) = parse(data) else { return };
    let src = MacAddr(data.get(6..12).and_then(|s| s.try_into().ok()).unwrap_or([2, 0, 0, 0, 0, 1]));
    let again = match &pdu {
        SlowPdu::Lacp(l) => parse(&l.emit(src)),
        SlowPdu::Marker(m) => parse(&m.emit(src)),
    };
    assert_eq!(again.as_ref().ok(), Some(&pdu), "emit then parse is the identity");
});
