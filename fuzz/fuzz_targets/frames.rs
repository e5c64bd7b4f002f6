//! Frame classification and every hash policy's parse, through the data
//! path's own entry points: the first input byte picks the mode, the hash
//! policy and the hash function, the rest is the frame, given to `tx_batch`
//! and `rx_batch`, the flow parse (with and without decapsulation), the
//! ARP/ND test and the MAC rewrites. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xbond_core::datapath::{
    rewrite_destination, rewrite_source, rx_batch, tx_batch, RxVerdict, TxVerdict,
};
use xbond_core::options::{HashFunction, HashPolicy, Mode};
use xbond_core::plan::{DupFilter, Selector, TxPlan};
use xbond_core::wire::{is_arp_or_nd, parse_flow, EthInfo};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else { return };
    let mode = Mode::ALL[usize::from(pick) % Mode::ALL.len()];
    let policy = HashPolicy::ALL[usize::from(pick >> 3) % HashPolicy::ALL.len()];
    let function = HashFunction::ALL[usize::from(pick >> 6) % HashFunction::ALL.len()];
    if let Some(eth) = EthInfo::parse(frame) {
        let _ = parse_flow(frame, &eth, false);
        let _ = parse_flow(frame, &eth, true);
    }
    let _ = is_arp_or_nd(frame);
    let frames = [frame];
    let mut plan = TxPlan::with_slaves(mode, &[0, 1, 2]);
    plan.policy = policy;
    plan.function = function;
    plan.tap_arp = pick & 0x80 != 0;
    plan.divert_host_arp = mode == Mode::BalanceAlb;
    plan.max_frame = 1518;
    let mut out = [TxVerdict::default(); 1];
    tx_batch(&plan, &mut Selector::new(1), &frames, &mut out);
    let mut rout = [RxVerdict::default(); 1];
    rx_batch(&plan, 1, &mut DupFilter::default(), &frames, &mut rout);
    let mut f = frame.to_vec();
    rewrite_source(&plan, 1, &mut f);
    rewrite_destination(&plan, &mut f);
});
