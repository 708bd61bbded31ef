//! The config loader: any text either validates or yields errors, never a
//! panic; a valid config's limits respect hyper's bounds.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match wsgate::config::Config::parse(text, Path::new("/nonexistent-fuzz-base")) {
        Ok(config) => {
            assert!(!config.listeners.is_empty() && !config.routes.is_empty());
            assert!(config.server.limits.max_header_size >= 8 * 1024);
        }
        Err(errors) => assert!(!errors.0.is_empty()),
    }
});
