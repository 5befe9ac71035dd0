//! Fuzzes the fiber-list parser (`boss-query --fibers`): any text gives a list or an error naming
//! the line, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(list) = model::fiberlist::parse_fiber_list(text, "fuzz.csv") {
            assert!(list.fibers.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        }
        let _ = model::table_text::records(text, "fuzz.csv");
    }
});
