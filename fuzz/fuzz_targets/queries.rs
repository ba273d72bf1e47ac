//! Query strings (`limit`, `before` cursors, `after`, `follow`, `userId`...) and
//! `Last-Event-ID`: typed values in range, or a 4xx; a user token's list is always its own.
#![no_main]

use arbitrary::Arbitrary;
use kiln_api::untrusted;
use kiln_shared::domain::UserId;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    query: &'a str,
    last_event_id: &'a [u8],
}

fuzz_target!(|i: Input| {
    let user = UserId::parse("u_fuzz").expect("a valid user id");
    let q = untrusted::queries(i.query, &user);
    let four = |e: &untrusted::ApiError| assert!(untrusted::is_client_error(e), "{e:?}");
    match &q.builds {
        Ok(f) => assert!((1..=100).contains(&f.limit)),
        Err(e) => four(e),
    }
    match &q.builds_as_user {
        Ok(f) => assert_eq!(
            f.user_id.as_ref(),
            Some(&user),
            "a user token lists its own builds only"
        ),
        Err(e) => four(e),
    }
    match &q.events {
        Ok((after, limit)) => assert!(*after >= 0 && (1..=1000).contains(limit)),
        Err(e) => four(e),
    }
    if let Err(e) = &q.logs {
        four(e);
    }
    if let Err(e) = untrusted::last_event_id(i.last_event_id) {
        four(&e);
    }
});
