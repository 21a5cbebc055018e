//! The storage contract: the same cases for every adapter. An adapter's test file calls
//! `contract_suite!(name, factory)`, where `factory()` returns a fresh, empty [`Backend`].
//! Stores take every lifetime from the records, so the cases that watch expiry write records
//! that end soon.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use mcp_oauth_domain::client::{Client, RegistrationRequest};
use mcp_oauth_domain::clock::{Clock, ManualClock};
use mcp_oauth_domain::grace::{SealedSuccessor, SuccessorPair};
use mcp_oauth_domain::identity::Subject;
use mcp_oauth_domain::params::RequestParams;
use mcp_oauth_domain::pkce::{CodeChallenge, CodeVerifier};
use mcp_oauth_domain::ports::*;
use mcp_oauth_domain::redirect_uri::RedirectUri;
use mcp_oauth_domain::resource::{Issuer, ResourceUri};
use mcp_oauth_domain::scope::Scope;
use mcp_oauth_domain::secret::{TokenDigest, generate_secret};
use mcp_oauth_domain::service::{AuthorizationServer, ClientCredentials, ConsentDecision, Policy, Stores, TokenResponse};
use mcp_oauth_domain::{ErrorCode, OAuthError};

/// A fresh store, and whatever must stay alive while it is used (a server process, a file).
pub struct Backend {
    pub stores: Stores,
    pub keep_alive: Box<dyn Any + Send + Sync>,
}

/// A token request's form parameters.
fn form(pairs: &[(&str, &str)]) -> RequestParams {
    RequestParams::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
}

/// A lifetime short enough to watch expire in real time on every backend.
pub const SHORT: Duration = Duration::from_millis(400);

/// The end of a record that should expire within [`SHORT`].
pub fn soon() -> chrono::DateTime<Utc> {
    Utc::now() + TimeDelta::from_std(SHORT).unwrap()
}

pub fn short_lifetimes() -> Lifetimes {
    Lifetimes { client: SHORT, pending_auth: SHORT, code: SHORT, access_token: SHORT, refresh: SHORT }
}

#[macro_export]
macro_rules! contract_suite {
    ($name:ident, $factory:expr) => {
        mod $name {
            use super::*;
            $crate::contract_cases!($factory;
                clients_round_trip, clients_are_prolonged_never_revived, live_clients_are_capped, racing_registrations_stay_under_the_cap,
                pending_requests_are_taken_once, records_expire,
                codes_redeem_once_then_report_replay, racing_redemptions_have_one_winner, issuing_stores_both_tokens_and_marks_the_code,
                access_tokens_and_family_revocation, refresh_rotation_and_reuse, racing_rotations_store_one_successor,
                refresh_family_revocation, family_tombstones_end, service_grace_window_retry, service_reuse_after_grace_revokes_family,
                service_racing_refreshes_share_one_successor, service_code_replay_revokes_tokens,
                service_records_end_when_the_policy_says, login_records_round_trip, racing_callbacks_take_one_attempt,
                login_records_expire, cached_documents_round_trip_and_expire,
                inventory_lists_and_deletes_clients, inventory_finds_grants_by_user_and_by_client, inventory_counts_and_purges);
        }
    };
}

#[macro_export]
macro_rules! contract_cases {
    ($factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::contract::$case(&$factory).await;
            }
        )*
    };
}

fn sample_client(id: &str) -> Client {
    let metadata = RegistrationRequest {
        redirect_uris: Some(vec!["http://127.0.0.1:3000/callback".into()]),
        client_name: Some("Contract client".into()),
        ..Default::default()
    }
    .validate(&Scope::parse("mcp").unwrap())
    .unwrap();
    Client {
        client_id: id.into(),
        secret_digest: Some(TokenDigest::of("secret")),
        metadata,
        issued_at: Utc::now(),
        expires_at: Utc::now() + TimeDelta::days(30),
    }
}

fn resource() -> ResourceUri {
    ResourceUri::parse("http://localhost:3232/mcp").unwrap()
}

fn challenge() -> CodeChallenge {
    CodeChallenge::of(&CodeVerifier::parse(&"v".repeat(43)).unwrap())
}

/// A pending request that ends within [`SHORT`].
pub fn short_lived_pending() -> PendingAuthorization {
    PendingAuthorization { expires_at: soon(), ..sample_pending() }
}

pub fn sample_pending() -> PendingAuthorization {
    PendingAuthorization {
        client_id: "client".into(),
        redirect_uri: RedirectUri::parse("http://127.0.0.1:3000/callback").unwrap(),
        code_challenge: challenge(),
        scope: Scope::parse("mcp").unwrap(),
        resource: resource(),
        state: Some("xyz".into()),
        csrf_digest: TokenDigest::of("csrf"),
        created_at: Utc::now(),
        expires_at: Utc::now() + TimeDelta::minutes(10),
    }
}

fn sample_grant(family: &FamilyId) -> AuthorizationGrant {
    AuthorizationGrant {
        client_id: "client".into(),
        redirect_uri: "http://127.0.0.1:3000/callback".into(),
        code_challenge: challenge(),
        scope: Scope::parse("mcp").unwrap(),
        resource: resource(),
        subject: Subject::parse("alice").unwrap(),
        family: family.clone(),
        issued_at: Utc::now(),
        expires_at: Utc::now() + TimeDelta::minutes(10),
    }
}

pub fn sample_access_token(family: &FamilyId) -> AccessTokenRecord {
    AccessTokenRecord {
        subject: Subject::parse("alice").unwrap(),
        client_id: "client".into(),
        scope: Scope::parse("mcp").unwrap(),
        audience: resource(),
        family: family.clone(),
        issued_at: Utc::now(),
        expires_at: Utc::now() + TimeDelta::hours(1),
        retained_until: Utc::now() + TimeDelta::days(7),
    }
}

fn sample_refresh(family: &FamilyId) -> RefreshGrant {
    RefreshGrant {
        client_id: "client".into(),
        subject: Subject::parse("alice").unwrap(),
        scope: Scope::parse("mcp").unwrap(),
        resource: resource(),
        family: family.clone(),
        issued_at: Utc::now(),
        expires_at: Utc::now() + TimeDelta::days(7),
    }
}

fn sealed_for(token: &str) -> SealedSuccessor {
    SealedSuccessor::seal(
        token,
        &SuccessorPair {
            access_token: generate_secret(),
            refresh_token: generate_secret(),
            access_expires_at: Utc::now(),
            scope: "mcp".into(),
        },
    )
}

async fn fresh<F, Fut>(factory: &F) -> Backend
where
    F: Fn() -> Fut,
    Fut: Future<Output = Backend>,
{
    factory().await
}

pub async fn clients_round_trip<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let clients = &backend.stores.clients;
    let client = sample_client("client-1");
    assert_eq!(clients.insert(&client, NO_CAP).await.unwrap(), Registration::Stored);
    assert_eq!(clients.get(&"client-1".into()).await.unwrap(), Some(client));
    assert_eq!(clients.get(&"client-2".into()).await.unwrap(), None);
}

const NO_CAP: u32 = u32::MAX;

pub async fn live_clients_are_capped<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let clients = &backend.stores.clients;
    assert_eq!(clients.insert(&Client { expires_at: soon(), ..sample_client("brief") }, 3).await.unwrap(), Registration::Stored);
    for id in ["a", "b"] {
        assert_eq!(clients.insert(&sample_client(id), 3).await.unwrap(), Registration::Stored);
    }
    assert_eq!(clients.insert(&sample_client("c"), 3).await.unwrap(), Registration::Full, "three live clients: full");
    assert_eq!(clients.get(&"c".into()).await.unwrap(), None, "a refused client is not stored");
    assert_eq!(clients.insert(&sample_client("a"), 3).await.unwrap(), Registration::Stored, "a kept client may be rewritten");
    tokio::time::sleep(SHORT + Duration::from_millis(300)).await;
    assert_eq!(clients.insert(&sample_client("c"), 3).await.unwrap(), Registration::Stored, "an expired client no longer counts");
    assert!(clients.get(&"a".into()).await.unwrap().is_some() && clients.get(&"c".into()).await.unwrap().is_some());
}

pub async fn racing_registrations_stay_under_the_cap<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let clients = backend.stores.clients.clone();
    let barrier = Arc::new(tokio::sync::Barrier::new(40));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (clients, barrier) = (clients.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                clients.insert(&sample_client(&format!("racer-{i}")), 10).await.unwrap()
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        stored += usize::from(task.await.unwrap() == Registration::Stored);
    }
    assert_eq!(stored, 10, "exactly the cap of 40 racing registrations is stored");
}

pub async fn pending_requests_are_taken_once<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let pending = &backend.stores.pending;
    let key = TokenDigest::of(&generate_secret());
    let request = sample_pending();
    pending.insert(&key, &request).await.unwrap();
    assert_eq!(pending.get(&key).await.unwrap(), Some(request.clone()));
    assert_eq!(pending.take(&key).await.unwrap(), Some(request));
    assert_eq!(pending.take(&key).await.unwrap(), None);
    assert_eq!(pending.get(&key).await.unwrap(), None);
    assert_eq!(pending.get(&TokenDigest::of("unknown")).await.unwrap(), None);
}

pub async fn records_expire<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let s = &backend.stores;
    let family = FamilyId::generate();
    let (request, code, access, refresh) =
        (TokenDigest::of("r"), TokenDigest::of("c"), TokenDigest::of("a"), TokenDigest::of("f"));
    // Every record carries its end; the store keeps it exactly that long.
    s.clients.insert(&Client { expires_at: soon(), ..sample_client("expiring") }, NO_CAP).await.unwrap();
    s.pending.insert(&request, &short_lived_pending()).await.unwrap();
    s.codes.insert(&code, &AuthorizationGrant { expires_at: soon(), ..sample_grant(&family) }).await.unwrap();
    let short_access = AccessTokenRecord { retained_until: soon(), ..sample_access_token(&family) };
    assert_eq!(s.access_tokens.insert(&access, &short_access).await.unwrap(), Admission::Stored);
    let short_refresh = RefreshGrant { expires_at: soon(), ..sample_refresh(&family) };
    assert_eq!(s.refresh.insert(&refresh, &short_refresh).await.unwrap(), Admission::Stored);
    assert!(s.clients.get(&"expiring".into()).await.unwrap().is_some());
    assert!(s.pending.get(&request).await.unwrap().is_some());
    assert!(s.access_tokens.get(&access).await.unwrap().is_some());
    assert!(s.refresh.get(&refresh).await.unwrap().is_some());

    tokio::time::sleep(SHORT + Duration::from_millis(300)).await;
    assert_eq!(s.clients.get(&"expiring".into()).await.unwrap(), None);
    assert_eq!(s.pending.get(&request).await.unwrap(), None);
    assert_eq!(s.pending.take(&request).await.unwrap(), None);
    assert_eq!(s.codes.redeem(&code).await.unwrap(), Redemption::Unknown);
    assert_eq!(s.access_tokens.get(&access).await.unwrap(), None);
    assert_eq!(s.refresh.get(&refresh).await.unwrap(), None);
    let next = TokenDigest::of("next");
    let sealed = sealed_for("f");
    let grant = sample_refresh(&family);
    let rotation = s
        .refresh
        .rotate(
            &refresh,
            Utc::now(),
            &sealed,
            Successor {
                token: &next,
                grant: &grant,
                access_token: &access_of(&next),
                access: &sample_access_token(&grant.family),
            },
        )
        .await;
    assert_eq!(rotation.unwrap(), Rotation::Unknown);
    assert_eq!(s.refresh.get(&next).await.unwrap(), None);
}

pub async fn codes_redeem_once_then_report_replay<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let codes = &backend.stores.codes;
    let code = TokenDigest::of(&generate_secret());
    let grant = sample_grant(&FamilyId::generate());
    codes.insert(&code, &grant).await.unwrap();
    assert_eq!(codes.redeem(&code).await.unwrap(), Redemption::Redeemed(grant.clone()));
    let in_flight = Redemption::Replayed { grant: grant.clone(), issued: false };
    assert_eq!(codes.redeem(&code).await.unwrap(), in_flight, "the first redemption has not issued yet");
    let (access, record) = (TokenDigest::of("a"), sample_access_token(&grant.family));
    let tokens = Issue { access_token: &access, access: &record, refresh: None };
    assert_eq!(codes.issue(&code, tokens).await.unwrap(), Admission::Stored);
    assert_eq!(codes.redeem(&code).await.unwrap(), Redemption::Replayed { grant, issued: true });
    let (other, record) = (TokenDigest::of("b"), sample_access_token(&FamilyId::generate()));
    let tokens = Issue { access_token: &other, access: &record, refresh: None };
    assert_eq!(codes.issue(&TokenDigest::of("unknown"), tokens).await.unwrap(), Admission::Stored, "a code gone since");
    assert_eq!(codes.redeem(&TokenDigest::of("unknown")).await.unwrap(), Redemption::Unknown, "is not brought back");
}

/// The access token the contract pairs with a successor refresh token.
fn access_of(refresh: &TokenDigest) -> TokenDigest {
    TokenDigest::of(&format!("access-of-{}", refresh.to_hex()))
}

/// A redeemed code's tokens are stored together with the code's mark, or not at all.
pub async fn issuing_stores_both_tokens_and_marks_the_code<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let s = &backend.stores;
    let family = FamilyId::generate();
    let code = TokenDigest::of(&generate_secret());
    s.codes.insert(&code, &sample_grant(&family)).await.unwrap();
    assert!(matches!(s.codes.redeem(&code).await.unwrap(), Redemption::Redeemed(_)));
    let (access, refresh) = (TokenDigest::of("a1"), TokenDigest::of("r1"));
    let (record, grant) = (sample_access_token(&family), sample_refresh(&family));
    let tokens = Issue { access_token: &access, access: &record, refresh: Some((&refresh, &grant)) };
    assert_eq!(s.codes.issue(&code, tokens).await.unwrap(), Admission::Stored);
    assert_eq!(s.access_tokens.get(&access).await.unwrap(), Some(record.clone()));
    assert_eq!(s.refresh.get(&refresh).await.unwrap().map(|r| r.state), Some(RefreshState::Active));
    assert!(matches!(s.codes.redeem(&code).await.unwrap(), Redemption::Replayed { issued: true, .. }));
    // Both tokens are members of the family: its revocation takes them.
    s.refresh.revoke_family(&family, Utc::now() + TimeDelta::days(7)).await.unwrap();
    s.access_tokens.revoke_family(&family, Utc::now() + TimeDelta::days(7)).await.unwrap();
    assert_eq!(s.access_tokens.get(&access).await.unwrap(), None);
    assert_eq!(s.refresh.get(&refresh).await.unwrap(), None);

    // A revoked family (a replay won the race) stores nothing and leaves the code unmarked.
    let late = TokenDigest::of(&generate_secret());
    s.codes.insert(&late, &sample_grant(&family)).await.unwrap();
    s.codes.redeem(&late).await.unwrap();
    let (access, refresh) = (TokenDigest::of("a2"), TokenDigest::of("r2"));
    let tokens = Issue { access_token: &access, access: &record, refresh: Some((&refresh, &grant)) };
    assert_eq!(s.codes.issue(&late, tokens).await.unwrap(), Admission::FamilyRevoked);
    assert_eq!(s.access_tokens.get(&access).await.unwrap(), None);
    assert_eq!(s.refresh.get(&refresh).await.unwrap(), None);
    assert!(matches!(s.codes.redeem(&late).await.unwrap(), Redemption::Replayed { issued: false, .. }));
}

pub async fn racing_redemptions_have_one_winner<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let codes = backend.stores.codes.clone();
    let code = TokenDigest::of(&generate_secret());
    codes.insert(&code, &sample_grant(&FamilyId::generate())).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (codes, barrier) = (codes.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                codes.redeem(&code).await.unwrap()
            })
        })
        .collect();
    let mut redeemed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Redemption::Redeemed(_) => redeemed += 1,
            Redemption::Replayed { .. } => {}
            Redemption::Unknown => panic!("a racing redemption lost the code"),
        }
    }
    assert_eq!(redeemed, 1, "exactly one of 64 racing redemptions wins");
}

pub async fn access_tokens_and_family_revocation<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let access_tokens = &backend.stores.access_tokens;
    let (family, other) = (FamilyId::generate(), FamilyId::generate());
    let (a1, a2, b1) = (TokenDigest::of("a1"), TokenDigest::of("a2"), TokenDigest::of("b1"));
    for (token, fam) in [(&a1, &family), (&a2, &family), (&b1, &other)] {
        assert_eq!(access_tokens.insert(token, &sample_access_token(fam)).await.unwrap(), Admission::Stored);
    }
    let stored = access_tokens.get(&a1).await.unwrap().expect("a stored access token is readable");
    assert_eq!((stored.subject.as_str(), &stored.family, &stored.audience), ("alice", &family, &resource()));
    access_tokens.remove(&a2).await.unwrap();
    assert_eq!(access_tokens.get(&a2).await.unwrap(), None);
    access_tokens.remove(&TokenDigest::of("unknown")).await.unwrap();

    access_tokens.revoke_family(&family, Utc::now() + TimeDelta::days(7)).await.unwrap();
    assert_eq!(access_tokens.get(&a1).await.unwrap(), None);
    assert!(access_tokens.get(&b1).await.unwrap().is_some(), "another family is untouched");
    let late = TokenDigest::of("late");
    assert_eq!(access_tokens.insert(&late, &sample_access_token(&family)).await.unwrap(), Admission::FamilyRevoked);
    assert_eq!(access_tokens.get(&late).await.unwrap(), None);
    access_tokens.revoke_family(&FamilyId::generate(), Utc::now() + TimeDelta::days(7)).await.unwrap();
}

pub async fn refresh_rotation_and_reuse<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let refresh = &backend.stores.refresh;
    let family = FamilyId::generate();
    let (r1, r2, r3) = (TokenDigest::of("r1"), TokenDigest::of("r2"), TokenDigest::of("r3"));
    let grant = sample_refresh(&family);
    assert_eq!(refresh.insert(&r1, &grant).await.unwrap(), Admission::Stored);
    assert_eq!(refresh.get(&r1).await.unwrap(), Some(RefreshRecord { grant: grant.clone(), state: RefreshState::Active }));

    let at = Utc::now();
    let sealed = sealed_for("r1");
    let rotated = refresh
        .rotate(
            &r1,
            at,
            &sealed,
            Successor { token: &r2, grant: &grant, access_token: &access_of(&r2), access: &sample_access_token(&grant.family) },
        )
        .await
        .unwrap();
    assert_eq!(rotated, Rotation::Rotated);
    let record = refresh.get(&r1).await.unwrap().unwrap();
    match record.state {
        RefreshState::Rotated { at: stored_at, successor } => {
            assert_eq!((stored_at - at).num_milliseconds().abs(), 0);
            assert_eq!(successor, sealed);
        }
        RefreshState::Active => panic!("the used token must be marked rotated"),
    }
    assert_eq!(refresh.get(&r2).await.unwrap().unwrap().state, RefreshState::Active);
    let access = backend.stores.access_tokens.get(&access_of(&r2)).await.unwrap();
    assert_eq!(access.map(|a| a.family), Some(family.clone()), "the successor's access token is stored with it");

    let again = refresh
        .rotate(
            &r1,
            Utc::now(),
            &sealed_for("r1"),
            Successor { token: &r3, grant: &grant, access_token: &access_of(&r3), access: &sample_access_token(&grant.family) },
        )
        .await
        .unwrap();
    match again {
        Rotation::AlreadyRotated { successor, .. } => assert_eq!(successor, sealed, "the first rotation's seal is kept"),
        other => panic!("expected AlreadyRotated, got {other:?}"),
    }
    assert_eq!(refresh.get(&r3).await.unwrap(), None, "a losing rotation stores nothing");
    assert_eq!(backend.stores.access_tokens.get(&access_of(&r3)).await.unwrap(), None, "not even its access token");
    let unknown = TokenDigest::of("unknown");
    let missing = refresh
        .rotate(
            &unknown,
            Utc::now(),
            &sealed,
            Successor { token: &r3, grant: &grant, access_token: &access_of(&r3), access: &sample_access_token(&grant.family) },
        )
        .await
        .unwrap();
    assert_eq!(missing, Rotation::Unknown);
    assert_eq!(refresh.get(&r3).await.unwrap(), None);
}

pub async fn racing_rotations_store_one_successor<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let refresh = backend.stores.refresh.clone();
    let family = FamilyId::generate();
    let r1 = TokenDigest::of("r1");
    refresh.insert(&r1, &sample_refresh(&family)).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (refresh, barrier, family) = (refresh.clone(), barrier.clone(), family.clone());
            tokio::spawn(async move {
                let successor = TokenDigest::of(&format!("successor-{i}"));
                barrier.wait().await;
                let grant = sample_refresh(&family);
                let sealed = sealed_for("r1");
                let rotation = refresh
                    .rotate(
                        &r1,
                        Utc::now(),
                        &sealed,
                        Successor {
                            token: &successor,
                            grant: &grant,
                            access_token: &access_of(&successor),
                            access: &sample_access_token(&grant.family),
                        },
                    )
                    .await;
                (successor, rotation.unwrap())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (successor, rotation) = task.await.unwrap();
        match rotation {
            Rotation::Rotated => winners.push(successor),
            Rotation::AlreadyRotated { .. } => {
                assert_eq!(refresh.get(&successor).await.unwrap(), None);
                assert_eq!(backend.stores.access_tokens.get(&access_of(&successor)).await.unwrap(), None);
            }
            Rotation::Unknown => panic!("a racing rotation lost the token"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one of 32 racing rotations wins");
    assert_eq!(refresh.get(&winners[0]).await.unwrap().unwrap().state, RefreshState::Active);
}

pub async fn refresh_family_revocation<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let refresh = &backend.stores.refresh;
    let (family, other) = (FamilyId::generate(), FamilyId::generate());
    let (r1, r2, r3, o1) = (TokenDigest::of("r1"), TokenDigest::of("r2"), TokenDigest::of("r3"), TokenDigest::of("o1"));
    refresh.insert(&r1, &sample_refresh(&family)).await.unwrap();
    refresh.insert(&o1, &sample_refresh(&other)).await.unwrap();
    let grant = sample_refresh(&family);
    refresh
        .rotate(
            &r1,
            Utc::now(),
            &sealed_for("r1"),
            Successor { token: &r2, grant: &grant, access_token: &access_of(&r2), access: &sample_access_token(&grant.family) },
        )
        .await
        .unwrap();

    refresh.revoke_family(&family, Utc::now() + TimeDelta::days(7)).await.unwrap();
    assert_eq!(refresh.get(&r1).await.unwrap(), None);
    assert_eq!(refresh.get(&r2).await.unwrap(), None);
    assert!(refresh.get(&o1).await.unwrap().is_some(), "another family is untouched");
    let rotation = refresh
        .rotate(
            &r2,
            Utc::now(),
            &sealed_for("r2"),
            Successor { token: &r3, grant: &grant, access_token: &access_of(&r3), access: &sample_access_token(&grant.family) },
        )
        .await
        .unwrap();
    assert_eq!(rotation, Rotation::Unknown);
    assert_eq!(refresh.insert(&r3, &grant).await.unwrap(), Admission::FamilyRevoked);
    assert_eq!(refresh.get(&r3).await.unwrap(), None);
}

/// A revoked family refuses new members until its tombstone's end, then accepts them again.
pub async fn family_tombstones_end<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let s = &backend.stores;
    let family = FamilyId::generate();
    s.refresh.revoke_family(&family, soon()).await.unwrap();
    s.access_tokens.revoke_family(&family, soon()).await.unwrap();
    let (refresh, access) = (TokenDigest::of("r"), TokenDigest::of("a"));
    assert_eq!(s.refresh.insert(&refresh, &sample_refresh(&family)).await.unwrap(), Admission::FamilyRevoked);
    assert_eq!(s.access_tokens.insert(&access, &sample_access_token(&family)).await.unwrap(), Admission::FamilyRevoked);
    tokio::time::sleep(SHORT + Duration::from_millis(300)).await;
    assert_eq!(s.refresh.insert(&refresh, &sample_refresh(&family)).await.unwrap(), Admission::Stored);
    assert_eq!(s.access_tokens.insert(&access, &sample_access_token(&family)).await.unwrap(), Admission::Stored);
}

// The domain service over each adapter: the rules that span several ports.

struct Flow {
    server: Arc<AuthorizationServer>,
    clock: Arc<ManualClock>,
    credentials: ClientCredentials,
    _backend: Backend,
}

impl Flow {
    async fn new<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F, grace_secs: i64) -> Self {
        Self::with_lifetimes(factory, grace_secs, Lifetimes::default()).await
    }

    async fn with_lifetimes<F: Fn() -> Fut, Fut: Future<Output = Backend>>(
        factory: &F,
        grace_secs: i64,
        lifetimes: Lifetimes,
    ) -> Self {
        let backend = fresh(factory).await;
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let policy = Policy {
            issuer: Issuer::parse("http://localhost:3232").unwrap(),
            resources: vec![resource()],
            scopes: Scope::parse("mcp").unwrap(),
            access_token_ttl: TimeDelta::hours(1),
            refresh_grace: TimeDelta::seconds(grace_secs),
            resource_servers: vec![],
            lifetimes,
            consent_ttl: Duration::from_secs(30 * 24 * 3600),
            max_clients: NO_CAP,
            vault_key: None,
            registration: mcp_oauth_domain::service::RegistrationPolicy::Open,
            configured_clients: vec![],
        };
        let server = Arc::new(AuthorizationServer::new(backend.stores.clone(), policy, clock.clone() as Arc<dyn Clock>));
        let registered = server
            .register(
                RegistrationRequest {
                    redirect_uris: Some(vec!["http://127.0.0.1:3000/callback".into()]),
                    token_endpoint_auth_method: Some("none".into()),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        let credentials = ClientCredentials::Public { client_id: registered.client.client_id };
        Self { server, clock, credentials, _backend: backend }
    }

    async fn code(&self, verifier: &str) -> String {
        let ClientCredentials::Public { client_id } = &self.credentials else { unreachable!() };
        let challenge = CodeChallenge::of(&CodeVerifier::parse(verifier).unwrap());
        let params = RequestParams::new(
            [
                ("response_type", "code"),
                ("client_id", client_id.as_str()),
                ("redirect_uri", "http://127.0.0.1:3000/callback"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("state", "s"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        let prompt = self.server.authorize(&params).await.unwrap();
        let approve = ConsentDecision::Approve { subject: "alice".into() };
        let redirect =
            self.server.decide(&prompt.request_id, &prompt.csrf_token, Some(&prompt.csrf_token), approve).await.unwrap();
        redirect.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned()
    }

    async fn tokens(&self) -> TokenResponse {
        let verifier = "x".repeat(50);
        let code = self.code(&verifier).await;
        self.exchange(&code, &verifier).await.unwrap()
    }

    async fn exchange(&self, code: &str, verifier: &str) -> Result<TokenResponse, OAuthError> {
        let request = form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://127.0.0.1:3000/callback"),
            ("code_verifier", verifier),
        ]);
        self.server.token(&self.credentials, &request).await
    }

    async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, OAuthError> {
        self.server.token(&self.credentials, &form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])).await
    }

    async fn active(&self, token: &str) -> bool {
        let access_tokens = &self._backend.stores.access_tokens;
        access_tokens.get(&TokenDigest::of(token)).await.unwrap().is_some()
    }
}

pub async fn service_grace_window_retry<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let flow = Flow::new(factory, 30).await;
    let first = flow.tokens().await;
    let r1 = first.refresh_token.clone().unwrap();
    let second = flow.refresh(&r1).await.unwrap();
    flow.clock.advance(TimeDelta::seconds(10));
    let retry = flow.refresh(&r1).await.unwrap();
    assert_eq!(retry.access_token, second.access_token, "a retry within the grace window gets the same successor");
    assert_eq!(retry.refresh_token, second.refresh_token);
    assert!(flow.active(&second.access_token).await);
    let third = flow.refresh(second.refresh_token.as_deref().unwrap()).await.unwrap();
    assert!(flow.active(&third.access_token).await, "the successor keeps working after a grace retry");
}

pub async fn service_reuse_after_grace_revokes_family<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let flow = Flow::new(factory, 30).await;
    let first = flow.tokens().await;
    let r1 = first.refresh_token.clone().unwrap();
    let second = flow.refresh(&r1).await.unwrap();
    flow.clock.advance(TimeDelta::seconds(31));
    let reuse = flow.refresh(&r1).await.unwrap_err();
    assert_eq!(reuse.code, ErrorCode::InvalidGrant);
    assert!(!flow.active(&first.access_token).await);
    assert!(!flow.active(&second.access_token).await, "reuse revokes every descendant");
    let after = flow.refresh(second.refresh_token.as_deref().unwrap()).await.unwrap_err();
    assert_eq!(after.code, ErrorCode::InvalidGrant);

    // Once the successor has itself been used, even an in-window retry is reuse.
    let flow = Flow::new(factory, 30).await;
    let first = flow.tokens().await;
    let r1 = first.refresh_token.clone().unwrap();
    let second = flow.refresh(&r1).await.unwrap();
    let third = flow.refresh(second.refresh_token.as_deref().unwrap()).await.unwrap();
    assert_eq!(flow.refresh(&r1).await.unwrap_err().code, ErrorCode::InvalidGrant);
    assert!(!flow.active(&third.access_token).await);

    // With the window off, any reuse revokes.
    let flow = Flow::new(factory, 0).await;
    let first = flow.tokens().await;
    let r1 = first.refresh_token.clone().unwrap();
    let second = flow.refresh(&r1).await.unwrap();
    assert_eq!(flow.refresh(&r1).await.unwrap_err().code, ErrorCode::InvalidGrant);
    assert!(!flow.active(&second.access_token).await);
}

pub async fn service_racing_refreshes_share_one_successor<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let flow = Arc::new(Flow::new(factory, 30).await);
    let first = flow.tokens().await;
    let r1 = first.refresh_token.clone().unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (flow, barrier, r1) = (flow.clone(), barrier.clone(), r1.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                flow.refresh(&r1).await
            })
        })
        .collect();
    let mut successors = std::collections::HashSet::new();
    for task in tasks {
        let response = task.await.unwrap().expect("every racing refresh inside the grace window succeeds");
        assert!(flow.active(&response.access_token).await);
        successors.insert(response.refresh_token.unwrap());
    }
    assert_eq!(successors.len(), 1, "racing refreshes yield one successor");
}

pub async fn service_code_replay_revokes_tokens<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let flow = Flow::new(factory, 30).await;
    let verifier = "y".repeat(60);
    let code = flow.code(&verifier).await;
    let tokens = flow.exchange(&code, &verifier).await.unwrap();
    assert!(flow.active(&tokens.access_token).await);
    let replay = flow.exchange(&code, &verifier).await.unwrap_err();
    assert_eq!(replay.code, ErrorCode::InvalidGrant);
    assert!(!flow.active(&tokens.access_token).await, "a replayed code revokes the first redemption's tokens");
    let refresh = flow.refresh(tokens.refresh_token.as_deref().unwrap()).await.unwrap_err();
    assert_eq!(refresh.code, ErrorCode::InvalidGrant);
}

/// The policy's lifetimes are what the stores enforce: with every lifetime short, a code, a
/// pending request and a refresh token end on time on every backend.
pub async fn service_records_end_when_the_policy_says<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let lifetimes = Lifetimes { client: Duration::from_secs(3600), ..short_lifetimes() };
    let flow = Flow::with_lifetimes(factory, 30, lifetimes).await;
    let verifier = "z".repeat(60);
    let tokens = flow.tokens().await;
    let code = flow.code(&verifier).await;
    tokio::time::sleep(SHORT + Duration::from_millis(300)).await;
    let late = flow.exchange(&code, &verifier).await.unwrap_err();
    assert_eq!(late.code, ErrorCode::InvalidGrant, "the code ended with the policy's code lifetime");
    let refresh = flow.refresh(tokens.refresh_token.as_deref().unwrap()).await.unwrap_err();
    assert_eq!(refresh.code, ErrorCode::InvalidGrant, "the refresh token ended with the policy's refresh lifetime");
    assert!(!flow.active(&tokens.access_token).await, "the access-token record ended with the policy's lifetime");
}

fn sample_identity() -> mcp_oauth_domain::login::UpstreamIdentity {
    mcp_oauth_domain::login::UpstreamIdentity {
        subject: Subject::parse("alice").unwrap(),
        upstream_subject: "upstream-alice".into(),
        verified_email: Some("alice@example.com".into()),
        name: None,
        groups: vec!["staff".into()],
        provider: "idp".into(),
    }
}

fn sample_sealed() -> mcp_oauth_domain::login::SealedTokens {
    let tokens = mcp_oauth_domain::login::UpstreamTokens { access_token: "a".into(), refresh_token: None, expires_at: None };
    mcp_oauth_domain::login::VaultKey::generate().seal(&tokens, "binding")
}

fn sample_attempt(until: chrono::DateTime<Utc>) -> mcp_oauth_domain::login::LoginAttempt {
    mcp_oauth_domain::login::LoginAttempt {
        pending: TokenDigest::of("request"),
        browser: TokenDigest::of("browser"),
        created_at: Utc::now(),
        expires_at: until,
    }
}

pub async fn login_records_round_trip<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    use mcp_oauth_domain::login::*;
    let backend = fresh(factory).await;
    let s = &backend.stores;
    let later = Utc::now() + TimeDelta::hours(1);
    let session =
        LoginSession { identity: sample_identity(), tokens: sample_sealed(), created_at: Utc::now(), expires_at: later };
    let key = TokenDigest::of("session");
    s.login_sessions.insert(&key, &session).await.unwrap();
    assert_eq!(s.login_sessions.get(&key).await.unwrap(), Some(session));
    s.login_sessions.remove(&key).await.unwrap();
    assert_eq!(s.login_sessions.get(&key).await.unwrap(), None);

    let consent_key =
        RememberedConsent::key(&Subject::parse("alice").unwrap(), &"c".into(), &Scope::parse("mcp").unwrap(), &resource());
    assert_eq!(s.consents.recall(&consent_key).await.unwrap(), None);
    let consent = RememberedConsent {
        subject: Subject::parse("alice").unwrap(),
        client_id: "c".into(),
        approved_at: Utc::now(),
        expires_at: later,
    };
    s.consents.remember(&consent_key, &consent).await.unwrap();
    s.consents.remember(&consent_key, &consent).await.unwrap();
    assert_eq!(s.consents.recall(&consent_key).await.unwrap(), Some(consent));

    let family = FamilyId::generate();
    let grant = UpstreamGrant { identity: sample_identity(), tokens: sample_sealed(), expires_at: later };
    s.upstream_tokens.put(&family, &grant).await.unwrap();
    let replaced = UpstreamGrant { tokens: sample_sealed(), ..grant };
    s.upstream_tokens.put(&family, &replaced).await.unwrap();
    assert_eq!(s.upstream_tokens.get(&family).await.unwrap(), Some(replaced));
    assert_eq!(s.upstream_tokens.get(&FamilyId::generate()).await.unwrap(), None);
    s.upstream_tokens.remove(&family).await.unwrap();
    assert_eq!(s.upstream_tokens.get(&family).await.unwrap(), None);
}

pub async fn racing_callbacks_take_one_attempt<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let attempts = backend.stores.login_attempts.clone();
    let state = TokenDigest::of("state");
    let attempt = sample_attempt(Utc::now() + TimeDelta::minutes(10));
    attempts.insert(&state, &attempt).await.unwrap();
    assert_eq!(attempts.get(&state).await.unwrap(), Some(attempt.clone()), "a look leaves it in place");
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (attempts, barrier) = (attempts.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                attempts.take(&state).await.unwrap()
            })
        })
        .collect();
    let mut taken = 0;
    for task in tasks {
        if let Some(got) = task.await.unwrap() {
            assert_eq!(got, attempt);
            taken += 1;
        }
    }
    assert_eq!(taken, 1, "exactly one of 32 racing callbacks gets the attempt");
    assert_eq!(attempts.get(&state).await.unwrap(), None);
}

pub async fn login_records_expire<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    use mcp_oauth_domain::login::*;
    let backend = fresh(factory).await;
    let s = &backend.stores;
    let (key, state, family) = (TokenDigest::of("session"), TokenDigest::of("state"), FamilyId::generate());
    let session =
        LoginSession { identity: sample_identity(), tokens: sample_sealed(), created_at: Utc::now(), expires_at: soon() };
    s.login_sessions.insert(&key, &session).await.unwrap();
    s.login_attempts.insert(&state, &sample_attempt(soon())).await.unwrap();
    let consent = RememberedConsent {
        subject: Subject::parse("alice").unwrap(),
        client_id: "c".into(),
        approved_at: Utc::now(),
        expires_at: soon(),
    };
    s.consents.remember(&key, &consent).await.unwrap();
    s.upstream_tokens
        .put(&family, &UpstreamGrant { identity: sample_identity(), tokens: sample_sealed(), expires_at: soon() })
        .await
        .unwrap();
    assert!(s.login_sessions.get(&key).await.unwrap().is_some());
    tokio::time::sleep(SHORT + Duration::from_millis(300)).await;
    assert_eq!(s.login_sessions.get(&key).await.unwrap(), None);
    assert_eq!(s.login_attempts.take(&state).await.unwrap(), None);
    assert_eq!(s.consents.recall(&key).await.unwrap(), None);
    assert_eq!(s.upstream_tokens.get(&family).await.unwrap(), None);
}

/// A validated metadata document is kept under its URL's digest until its stale window ends,
/// replaced by a newer fetch, and removed when its host serves an invalid one.
pub async fn cached_documents_round_trip_and_expire<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    use mcp_oauth_domain::metadata_document::{CachedDocument, DocumentUrl};
    let backend = fresh(factory).await;
    let documents = &backend.stores.documents;
    let url = DocumentUrl::parse("https://claude.ai/oauth/mcp-oauth-client-metadata").unwrap().digest();
    assert_eq!(documents.get(&url).await.unwrap(), None);
    let now = Utc::now();
    let document = CachedDocument {
        metadata: sample_client("doc").metadata,
        fetched_at: now,
        fresh_until: now + TimeDelta::minutes(1),
        expires_at: now + TimeDelta::hours(1),
    };
    documents.put(&url, &document).await.unwrap();
    assert_eq!(documents.get(&url).await.unwrap(), Some(document.clone()));
    let refetched = CachedDocument { fresh_until: now + TimeDelta::minutes(5), ..document.clone() };
    documents.put(&url, &refetched).await.unwrap();
    assert_eq!(documents.get(&url).await.unwrap(), Some(refetched));
    documents.remove(&url).await.unwrap();
    assert_eq!(documents.get(&url).await.unwrap(), None);

    let ending = CachedDocument { fresh_until: now, expires_at: soon(), ..document };
    documents.put(&url, &ending).await.unwrap();
    assert!(documents.get(&url).await.unwrap().is_some(), "a stale copy is kept until its end");
    tokio::time::sleep(SHORT + Duration::from_millis(300)).await;
    assert_eq!(documents.get(&url).await.unwrap(), None);
}

/// Use keeps a client alive: its record is replaced by one ending later, never by one ending
/// sooner, and a client that is gone is not brought back.
pub async fn clients_are_prolonged_never_revived<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let clients = &backend.stores.clients;
    let ending = Client { expires_at: soon(), ..sample_client("prolonged") };
    assert_eq!(clients.insert(&ending, NO_CAP).await.unwrap(), Registration::Stored);
    let later = Client { expires_at: Utc::now() + TimeDelta::hours(1), ..ending.clone() };
    clients.prolong(&later).await.unwrap();
    assert_eq!(clients.get(&later.client_id).await.unwrap(), Some(later.clone()));
    clients.prolong(&Client { expires_at: Utc::now() + TimeDelta::minutes(1), ..later.clone() }).await.unwrap();
    assert_eq!(clients.get(&later.client_id).await.unwrap(), Some(later.clone()), "an end never moves earlier");

    let gone = Client { expires_at: soon(), ..sample_client("gone") };
    clients.insert(&gone, NO_CAP).await.unwrap();
    tokio::time::sleep(SHORT + Duration::from_millis(300)).await;
    clients.prolong(&Client { expires_at: Utc::now() + TimeDelta::hours(1), ..gone.clone() }).await.unwrap();
    assert_eq!(clients.get(&gone.client_id).await.unwrap(), None, "a client that is gone stays gone");
    assert!(clients.get(&later.client_id).await.unwrap().is_some());
}

fn ids(clients: &[Client]) -> std::collections::BTreeSet<String> {
    clients.iter().map(|c| c.client_id.as_str().to_owned()).collect()
}

/// The operator's listing sees every live registration and deletes one for good.
pub async fn inventory_lists_and_deletes_clients<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let (clients, inventory) = (&backend.stores.clients, &backend.stores.inventory);
    assert!(inventory.clients().await.unwrap().is_empty());
    for id in ["a", "b"] {
        clients.insert(&sample_client(id), NO_CAP).await.unwrap();
    }
    clients.insert(&Client { expires_at: soon(), ..sample_client("brief") }, NO_CAP).await.unwrap();
    tokio::time::sleep(SHORT + Duration::from_millis(300)).await;
    assert_eq!(ids(&inventory.clients().await.unwrap()), ["a".to_owned(), "b".to_owned()].into(), "live clients only");
    assert!(inventory.delete_client(&"a".into()).await.unwrap());
    assert!(!inventory.delete_client(&"a".into()).await.unwrap(), "deleted once");
    assert!(!inventory.delete_client(&"brief".into()).await.unwrap(), "an expired client is not there to delete");
    assert_eq!(clients.get(&"a".into()).await.unwrap(), None);
    assert_eq!(ids(&inventory.clients().await.unwrap()), ["b".to_owned()].into());
    assert_eq!(clients.insert(&sample_client("c"), 2).await.unwrap(), Registration::Stored, "a deleted client frees its place");
}

/// Grants are found by user and by client, from access and refresh tokens alike, once per family.
pub async fn inventory_finds_grants_by_user_and_by_client<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    use mcp_oauth_domain::inventory::Holder;
    let backend = fresh(factory).await;
    let stores = &backend.stores;
    let (alice, bob) = (Subject::parse("alice").unwrap(), Subject::parse("bob").unwrap());
    let (f1, f2, f3) = (FamilyId::generate(), FamilyId::generate(), FamilyId::generate());
    // f1: alice through "client", an access and a refresh token; f2: bob through "other", a
    // refresh token only; f3: alice through "other", an access token only.
    stores.access_tokens.insert(&TokenDigest::of("a1"), &sample_access_token(&f1)).await.unwrap();
    stores.refresh.insert(&TokenDigest::of("r1"), &sample_refresh(&f1)).await.unwrap();
    let bobs = RefreshGrant { subject: bob.clone(), client_id: "other".into(), ..sample_refresh(&f2) };
    stores.refresh.insert(&TokenDigest::of("r2"), &bobs).await.unwrap();
    let alices = AccessTokenRecord { client_id: "other".into(), ..sample_access_token(&f3) };
    stores.access_tokens.insert(&TokenDigest::of("a3"), &alices).await.unwrap();

    let families = |grants: Vec<mcp_oauth_domain::inventory::HeldGrant>| -> std::collections::BTreeSet<FamilyId> {
        grants.into_iter().map(|g| g.family).collect()
    };
    let inventory = &stores.inventory;
    assert_eq!(families(inventory.grants(&Holder::User(alice.clone())).await.unwrap()), [f1.clone(), f3.clone()].into());
    assert_eq!(families(inventory.grants(&Holder::User(bob.clone())).await.unwrap()), [f2.clone()].into());
    assert_eq!(families(inventory.grants(&Holder::Client("other".into())).await.unwrap()), [f2.clone(), f3.clone()].into());
    let held = inventory.grants(&Holder::Client("client".into())).await.unwrap();
    assert_eq!(held.len(), 1, "two tokens of one family are one grant");
    assert_eq!((held[0].subject.as_str(), held[0].client_id.as_str()), ("alice", "client"));
    assert!(inventory.grants(&Holder::User(Subject::parse("carol").unwrap())).await.unwrap().is_empty());

    stores.refresh.revoke_family(&f1, Utc::now() + TimeDelta::days(7)).await.unwrap();
    stores.access_tokens.revoke_family(&f1, Utc::now() + TimeDelta::days(7)).await.unwrap();
    assert_eq!(families(inventory.grants(&Holder::User(alice)).await.unwrap()), [f3].into(), "a revoked family is gone");
}

/// Counts see live records only; a purge frees what expired.
pub async fn inventory_counts_and_purges<F: Fn() -> Fut, Fut: Future<Output = Backend>>(factory: &F) {
    let backend = fresh(factory).await;
    let stores = &backend.stores;
    let inventory = &stores.inventory;
    assert_eq!(inventory.counts().await.unwrap(), mcp_oauth_domain::inventory::RecordCounts::default(), "an empty store");
    stores.clients.insert(&sample_client("a"), NO_CAP).await.unwrap();
    stores.clients.insert(&Client { expires_at: soon(), ..sample_client("brief") }, NO_CAP).await.unwrap();
    stores.pending.insert(&TokenDigest::of("p1"), &sample_pending()).await.unwrap();
    stores.pending.insert(&TokenDigest::of("p2"), &short_lived_pending()).await.unwrap();
    let family = FamilyId::generate();
    stores.access_tokens.insert(&TokenDigest::of("a1"), &sample_access_token(&family)).await.unwrap();
    stores.refresh.insert(&TokenDigest::of("r1"), &sample_refresh(&family)).await.unwrap();
    stores.refresh.insert(&TokenDigest::of("r2"), &sample_refresh(&family)).await.unwrap();
    stores.refresh.revoke_family(&FamilyId::generate(), Utc::now() + TimeDelta::days(1)).await.unwrap();
    let counts = inventory.counts().await.unwrap();
    assert_eq!(
        (counts.clients, counts.pending_authorizations, counts.access_tokens, counts.refresh_tokens, counts.revoked_families),
        (2, 2, 1, 2, 1)
    );
    tokio::time::sleep(SHORT + Duration::from_millis(300)).await;
    // Memory and SQLite free both records; Redis expired them itself and frees the client's index entry.
    assert!(inventory.purge_expired().await.unwrap() >= 1, "the purge frees something");
    assert_eq!(inventory.purge_expired().await.unwrap(), 0, "and nothing twice");
    let counts = inventory.counts().await.unwrap();
    assert_eq!((counts.clients, counts.pending_authorizations), (1, 1), "the expired ones are gone");
    assert_eq!(
        stores.clients.insert(&sample_client("b"), 2).await.unwrap(),
        Registration::Stored,
        "the purged client frees its place"
    );
}
