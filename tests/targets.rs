//! The signal target forms of stage-spec §8.1 across a real cluster: `T+id`, the `*` `=` `+`
//! prefixes, `@id`, an exact instance, and an answer deferred by saving `_WAITFOR`.

mod common;
use common::{Proc, Scratch, WAIT};

const SVC: &str = r#"
-- "T+id" arrives as "<sender>:id": register the sender-qualified id.
stage.waitfor("drv:hello", function(v) return "plus", stage.id(), v end)
stage.waitfor("b", function(v) return "b", stage.id(), v end)
stage.waitfor("same", function(v) return "same", stage.id(), v end)
stage.waitfor("exact", function(v) return "exact", stage.id(), v end)
-- Answer later, from a timer, through a saved copy of _WAITFOR.
stage.waitfor("later", function(v)
  local w = _WAITFOR
  stage.addtask(50, function() stage.signal(w, "later", stage.id(), v); return -1 end)
end)
"#;

const DRV: &str = r#"
stage.waitfor("ans", function(kind, id, v) print("ANS", kind, id, v) end)
stage.waitfor("nope", function(err, v) print("NOPE", err, v) end)
stage.waitfor("self", function(v) print("SELF", v, _WAITFOR[2]) end)
stage.signal("svc+hello=ans", 1)
stage.signal("*svc:b=ans", 2)
stage.signal("=svc:same=ans", 3)
stage.signal("=svc:same=ans", 4)
-- Every member is on this host (loopback), so "other hosts" has nobody: the fail path runs.
stage.signal("+svc:same=ans!nope", 5)
stage.signal({ "svc:exact=ans", instance = 3 }, 6)
stage.signal("svc:later=ans", 7)
stage.signal("@self", 8)
"#;

#[test]
fn every_target_form_reaches_its_members() {
    let dir = Scratch::new("targets");
    dir.write("svc.lua", SVC);
    dir.write("drv.lua", DRV);
    let (router, addr) = Proc::router("router", &[], &dir.dir);
    let _s2 = Proc::node(
        "svc2",
        &["--router", &addr, "--stage", "svc=svc.lua", "--id", "2"],
        &dir.dir,
    );
    let _s3 = Proc::node(
        "svc3",
        &["--router", &addr, "--stage", "svc=svc.lua", "--id", "3"],
        &dir.dir,
    );
    router.wait_err("registered svc:2", WAIT);
    router.wait_err("registered svc:3", WAIT);
    let drv = Proc::node(
        "drv",
        &["--router", &addr, "--stage", "drv=drv.lua", "--id", "1"],
        &dir.dir,
    );

    let answers = drv.wait_count("ANS", 7, WAIT);
    let has = |prefix: &str| answers.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(has("ANS\tplus\t"), 1, "{answers:?}");
    assert!(answers
        .iter()
        .any(|l| l.starts_with("ANS\tplus\t") && l.ends_with("\t1")));
    // Broadcast: one answer from each member.
    assert!(answers.contains(&"ANS\tb\t2\t2".to_string()), "{answers:?}");
    assert!(answers.contains(&"ANS\tb\t3\t2".to_string()), "{answers:?}");
    // Same host, round robin: the two messages went to different members.
    let same: Vec<_> = answers
        .iter()
        .filter(|l| l.starts_with("ANS\tsame\t"))
        .collect();
    assert_eq!(same.len(), 2, "{answers:?}");
    assert_ne!(
        same[0].split('\t').nth(2),
        same[1].split('\t').nth(2),
        "{same:?}"
    );
    assert!(
        answers.contains(&"ANS\texact\t3\t6".to_string()),
        "{answers:?}"
    );
    let later = drv.wait_out("ANS\tlater", WAIT);
    assert!(later.ends_with("\t7"), "{later}");
    let nope = drv.wait_out("NOPE", WAIT);
    assert!(
        nope.contains("stage 'svc': no live member") && nope.ends_with("\t5"),
        "{nope}"
    );
    // "@id": the own stage name through the cluster; the only member is this node.
    assert_eq!(drv.wait_out("SELF", WAIT), "SELF\t8\tdrv");
}
