//! COMFD lines applied to a task's progress state, as a step's writes are:
//! the first bytes choose the steps and their weights, the rest are lines.
//! Parsing and applying never panic, whatever the numbers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use muster::ns8::comfd::{apply, Parser};
use muster::ns8::progress::Processor;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let steps = 1 + (n % 8) as usize;
    let (weights, text) = rest.split_at(rest.len().min(steps));
    let Ok(text) = std::str::from_utf8(text) else { return };
    let mut proc =
        Processor::new((0..steps).map(|i| (format!("s{i}"), *weights.get(i).unwrap_or(&1) as i64)).collect());
    let mut p = Parser::default();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if let Some(record) = p.feed(line) {
            let _ = apply(&record, &mut proc, i % steps);
            let _ = proc.to_json();
        }
    }
    if let Some(record) = p.finish() {
        let _ = apply(&record, &mut proc, 0);
    }
});
