//! Fuzz target: parse arbitrary bytes as the JSON text of a `filter` query parameter.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    objectos_data::expr::fuzzing::filter_parse(data);
});
