//! Kernel option strings (`mode=active-backup,miimon=100`) and ifupdown
//! stanzas: parsed or refused, never a panic; what imports validates and
//! writes to a TOML file that reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xbond_core::config::{import_ifupdown, import_option_string, BondConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for imported in [import_option_string(text), import_ifupdown(text)] {
        let Ok(imp) = imported else { continue };
        let cfg = imp.config;
        if cfg.validate().is_ok() {
            let back = BondConfig::from_toml_str(&cfg.to_toml()).expect("an imported bond writes back");
            assert_eq!(back, cfg);
        }
    }
});
