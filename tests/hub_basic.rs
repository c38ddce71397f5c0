//! Hub acceptance: tags, direct messages, failures, unknown actions,
//! discovery of new and missing agents.

mod common;
#[path = "common/hub.rs"]
mod hubfleet;
#[path = "common/redis.rs"]
mod redis;

use common::{code, ends, stderr};
use hubfleet::HubFleet;

#[test]
fn smoke() {
    let mut f = HubFleet::new();
    let s = f.script("hello", "echo hello from $MUSTER_AGENT");
    f.add("a1", &[], &[("hello", &s)], "");
    f.start_all();
    let out = f.run("all", &["--output", "json", "--expect", "1"], &["hello"]);
    assert_eq!(code(&out), 0, "{}\n{}", stderr(&out), f.log(0));
    assert_eq!(ends(&out)["a1"]["state"], "succeeded");
}
