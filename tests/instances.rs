//! Instance numbers handed out by routers to nodes started without `--id` (luna-spec's
//! service ids, `class << 24 | instance`): with several routers, every node still gets a
//! number of its own and links to every router, however their start-ups interleave.

mod common;
use common::{Proc, Scratch, WAIT};

#[test]
fn nodes_starting_together_get_distinct_numbers_from_several_routers() {
    let dir = Scratch::new("instances");
    dir.write("s.lua", "");
    let (r1, a1) = Proc::router("r1", &[], &dir.dir);
    let (r2, a2) = Proc::router("r2", &[], &dir.dir);
    // Half the nodes list the routers one way round, half the other: before the fix each
    // router handed out its own "1", and the second router refused the node holding it.
    let nodes: Vec<Proc> = (0..6)
        .map(|i| {
            let (first, second) = if i % 2 == 0 { (&a1, &a2) } else { (&a2, &a1) };
            let name = format!("n{i}");
            let args = [
                "--router", first, "--router", second, "--name", &name, "--stage", "s=s.lua",
            ];
            Proc::node(&name, &args, &dir.dir)
        })
        .collect();
    for router in [&r1, &r2] {
        let lines = router.wait_count_err("registered s:", nodes.len(), WAIT);
        let mut ids: Vec<&str> = lines
            .iter()
            .map(|l| {
                l.split("registered s:")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
            })
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), nodes.len(), "distinct numbers: {lines:#?}");
        assert!(
            !router
                .stderr()
                .iter()
                .any(|l| l.contains("already registered")),
            "no node was refused:\n{}",
            router.dump()
        );
    }
}
