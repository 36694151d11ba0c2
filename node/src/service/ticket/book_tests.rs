use super::*;

fn owner(stage: &str) -> Owner {
    Owner {
        stage: stage.into(),
        instance: 1,
    }
}

/// A book with category "db" of `limit` tickets.
fn book(limit: i64) -> (Book, Instant) {
    let now = Instant::now();
    let mut b = Book::new(100);
    b.define("db", limit, None, now).unwrap();
    (b, now)
}

/// A request of stage "s" with no deadline, nobody waiting for an answer.
fn from(corr: u64, deadline: Option<Instant>) -> Requester {
    Requester {
        owner: owner("s"),
        corr,
        deadline,
    }
}

fn ask(b: &mut Book, cat: &str, n: i64, now: Instant) -> Result<Admitted, String> {
    b.request(&from(0, None), cat, "cb", vec![Bson::Int64(n)], now)
}

/// The first value of each grant since the last call.
fn grants(b: &mut Book) -> Vec<i64> {
    b.take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Grant(g) => g.values.first().and_then(Bson::as_i64),
            Event::Cancel { .. } | Event::Settle { .. } => None,
        })
        .collect()
}

fn handle(a: Admitted) -> u64 {
    match a {
        Admitted::Granted(h) | Admitted::Queued(h) => h,
    }
}

#[test]
fn grants_up_to_the_limit_then_in_request_order_as_tickets_free() {
    let (mut b, now) = book(2);
    let hs: Vec<u64> = (1..=5)
        .map(|n| handle(ask(&mut b, "db", n, now).unwrap()))
        .collect();
    assert_eq!(grants(&mut b), vec![1, 2]);
    b.extend(hs[1], &owner("s"), 0, now).unwrap();
    assert_eq!(grants(&mut b), vec![3]);
    b.extend(hs[0], &owner("s"), 0, now).unwrap();
    b.extend(hs[2], &owner("s"), 0, now).unwrap();
    assert_eq!(grants(&mut b), vec![4, 5]);
}

#[test]
fn an_expired_hold_is_revoked_and_its_ticket_granted_on() {
    let (mut b, now) = book(1);
    let first = handle(ask(&mut b, "db", 1, now).unwrap());
    let second = handle(ask(&mut b, "db", 2, now).unwrap());
    b.take_events();
    b.tick(now);
    assert_eq!(b.next_due(), Some(now + HOLD));
    b.tick(now + HOLD);
    let events = b.take_events();
    assert!(matches!(&events[0], Event::Cancel { handle, .. } if *handle == first));
    assert!(matches!(&events[1], Event::Grant(g) if g.handle == second));
    // Extended: not revoked at the end of the default hold.
    b.extend(second, &owner("s"), 5000, now + HOLD).unwrap();
    b.tick(now + HOLD * 2);
    assert!(b.take_events().is_empty());
}

#[test]
fn no_queue_a_full_queue_and_unknown_categories_refuse() {
    let now = Instant::now();
    let mut b = Book::new(1);
    b.define("neg", -1, None, now).unwrap();
    b.define("db", 1, None, now).unwrap();
    assert!(matches!(
        ask(&mut b, "neg", 1, now),
        Ok(Admitted::Granted(_))
    ));
    assert!(ask(&mut b, "neg", 2, now).is_err());
    ask(&mut b, "db", 1, now).unwrap();
    assert!(matches!(ask(&mut b, "db", 2, now), Ok(Admitted::Queued(_))));
    assert!(ask(&mut b, "db", 3, now).unwrap_err().contains("full"));
    assert!(ask(&mut b, "nope", 1, now).is_err());
    assert!(b.define("nope", 0, None, now).is_err());
}

#[test]
fn closing_cancels_the_waiting_keeps_the_held_and_forgets_the_category_after() {
    let now = Instant::now();
    let mut b = Book::new(100);
    b.define("db", 1, Some(now + HOLD / 2), now).unwrap();
    let held = handle(ask(&mut b, "db", 1, now).unwrap());
    let waiting = handle(ask(&mut b, "db", 2, now).unwrap());
    b.take_events();
    b.tick(now + HOLD / 2);
    let events = b.take_events();
    assert!(matches!(&events[..], [Event::Cancel { handle, .. }] if *handle == waiting));
    assert!(ask(&mut b, "db", 3, now).unwrap_err().contains("closed"));
    assert_eq!(b.audience("db").map(|a| a.len()), Some(1));
    b.extend(held, &owner("s"), 0, now).unwrap();
    assert!(b.audience("db").is_none());
}

#[test]
fn growing_a_category_grants_at_once_and_a_deadline_drops_quietly() {
    let (mut b, now) = book(1);
    ask(&mut b, "db", 1, now).unwrap();
    ask(&mut b, "db", 2, now).unwrap();
    let late = b.request(&from(0, Some(now + HOLD / 4)), "db", "cb", vec![], now);
    assert!(matches!(late, Ok(Admitted::Queued(_))));
    b.tick(now + HOLD / 4);
    assert_eq!(grants(&mut b), vec![1]);
    b.define("db", 3, None, now).unwrap();
    assert_eq!(grants(&mut b), vec![2]);
}

#[test]
fn only_the_owner_extends_or_releases() {
    let (mut b, now) = book(1);
    let h = handle(ask(&mut b, "db", 1, now).unwrap());
    assert!(b.extend(h, &owner("other"), 0, now).is_err());
    assert!(b.extend(h + 1, &owner("s"), 0, now).is_err());
    b.extend(h, &owner("s"), 0, now).unwrap();
}

#[test]
fn limit_zero_closes_now_and_a_new_limit_opens_again() {
    let (mut b, now) = book(1);
    ask(&mut b, "db", 1, now).unwrap();
    let waiting = handle(b.request(&from(7, None), "db", "cb", vec![], now).unwrap());
    b.take_events();
    b.define("db", 0, None, now).unwrap();
    let events = b.take_events();
    assert!(matches!(&events[..], [
        Event::Cancel { handle, .. },
        Event::Settle { corr: 7, .. },
    ] if *handle == waiting));
    assert!(ask(&mut b, "db", 2, now).is_err());
    b.define("db", 2, None, now).unwrap();
    assert!(matches!(
        ask(&mut b, "db", 3, now),
        Ok(Admitted::Granted(_))
    ));
}
