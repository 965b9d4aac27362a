//! Fuzz target: parse and evaluate arbitrary bytes as a formula expression.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    objectos_data::expr::fuzzing::expr_parse_eval(data);
});
