//! The in-memory adapter: the zero-dependency default for one process. Records live in
//! dashmap shards; every check-and-set runs under one shard lock, which makes take-once
//! operations atomic within the process.

mod compact;
mod expiring;
mod inventory;
mod login;
mod rate_limit;
pub use rate_limit::MemoryRateLimits;

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::client::Client;
use mcp_oauth_domain::grace::SealedSuccessor;
use mcp_oauth_domain::identity::ClientId;
use mcp_oauth_domain::ports::{
    AccessTokenRecord, AccessTokenStore, Admission, AuthorizationCodeStore, AuthorizationGrant, ClientStore, Expiring, FamilyId,
    Issue, PendingAuthStore, PendingAuthorization, Redemption, RefreshGrant, RefreshRecord, RefreshState, RefreshStore,
    Registration, Rotation, StorageHealth, Successor,
};
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::service::Stores;

use compact::{Holdings, KeptAccessToken, family_key};
use expiring::ExpiringMap;

#[derive(Clone)]
struct Exchange {
    grant: AuthorizationGrant,
    redeemed: bool,
    issued: bool,
}

/// The tokens of one family in one store, and whether the family was revoked. A family holds
/// few tokens at a time, so a list is smaller than a set and as quick.
#[derive(Clone, Default)]
struct Family {
    revoked: bool,
    members: Vec<TokenDigest>,
}

impl Family {
    fn join(&mut self, token: TokenDigest) {
        if !self.members.contains(&token) {
            self.members.push(token);
        }
    }
}

/// Lock order, wherever two maps are touched: a family entry first, then token entries.
struct Inner {
    clients: ExpiringMap<ClientId, Client>,
    /// Held while a registration counts and inserts, so that racing ones never pass the cap.
    registering: std::sync::Mutex<()>,
    pending: ExpiringMap<TokenDigest, PendingAuthorization>,
    codes: ExpiringMap<TokenDigest, Exchange>,
    access_tokens: ExpiringMap<TokenDigest, KeptAccessToken>,
    holdings: Holdings,
    /// Whether each access-token family (under [`family_key`], as in `refresh_families`) is
    /// revoked. Its tokens are not listed: there are many, each a family of its own for an
    /// hour at a time. A revoked family's tokens are hidden at once, since every read checks
    /// their family, and freed by the sweep.
    access_token_families: ExpiringMap<TokenDigest, Revoked>,
    refresh: ExpiringMap<TokenDigest, RefreshRecord>,
    refresh_families: ExpiringMap<TokenDigest, Family>,
    login_sessions: ExpiringMap<TokenDigest, mcp_oauth_domain::login::LoginSession>,
    login_attempts: ExpiringMap<TokenDigest, mcp_oauth_domain::login::LoginAttempt>,
    consents: ExpiringMap<TokenDigest, mcp_oauth_domain::login::RememberedConsent>,
    upstream_tokens: ExpiringMap<FamilyId, mcp_oauth_domain::login::UpstreamGrant>,
    documents: ExpiringMap<TokenDigest, mcp_oauth_domain::metadata_document::CachedDocument>,
}

/// Whether an access-token family was revoked; kept at least as long as any of its tokens.
#[derive(Clone, Copy, Default)]
struct Revoked(bool);

impl Inner {
    fn revoked(&self, token: &KeptAccessToken) -> bool {
        self.access_token_families.get(&family_key(&token.family)).is_some_and(|Revoked(revoked)| revoked)
    }

    /// The revoked access-token families, read before a scan of the tokens: a scan that looked
    /// each family up under a token's shard lock would take the locks in the wrong order.
    fn revoked_access_families(&self) -> std::collections::HashSet<TokenDigest> {
        let mut revoked = std::collections::HashSet::new();
        self.access_token_families.for_each_live(|family, Revoked(state)| {
            if *state {
                revoked.insert(*family);
            }
        });
        revoked
    }

    fn sweep(&self) {
        self.purge();
    }

    fn purge_revoked_access_tokens(&self) -> usize {
        let revoked = self.revoked_access_families();
        if revoked.is_empty() {
            return 0;
        }
        self.access_tokens.retain(|_, token| !revoked.contains(&family_key(&token.family)))
    }

    /// Frees every expired record; returns how many. Holdings go too, but are not records.
    fn purge(&self) -> usize {
        let purged = self.clients.sweep()
            + self.pending.sweep()
            + self.codes.sweep()
            + self.access_tokens.sweep()
            + self.purge_revoked_access_tokens()
            + self.access_token_families.sweep()
            + self.refresh.sweep()
            + self.refresh_families.sweep()
            + self.login_sessions.sweep()
            + self.login_attempts.sweep()
            + self.consents.sweep()
            + self.upstream_tokens.sweep()
            + self.documents.sweep();
        self.holdings.sweep();
        purged
    }
}

/// Implements every port; clone it freely, clones share the same records.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                clients: ExpiringMap::new(),
                registering: std::sync::Mutex::default(),
                pending: ExpiringMap::new(),
                codes: ExpiringMap::new(),
                access_tokens: ExpiringMap::new(),
                holdings: Holdings::default(),
                access_token_families: ExpiringMap::new(),
                refresh: ExpiringMap::new(),
                refresh_families: ExpiringMap::new(),
                login_sessions: ExpiringMap::new(),
                login_attempts: ExpiringMap::new(),
                consents: ExpiringMap::new(),
                upstream_tokens: ExpiringMap::new(),
                documents: ExpiringMap::new(),
            }),
        }
    }

    pub fn stores(&self) -> Stores {
        Stores::sharing(self.clone())
    }

    /// Frees the memory of expired records now.
    pub fn sweep(&self) {
        self.inner.sweep();
    }

    /// Sweeps every `period` until the store is dropped.
    pub fn spawn_sweeper(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        sweep_while_alive(Arc::downgrade(&self.inner), period, Inner::sweep)
    }

    /// How many records (of every kind, expired or not) are held in memory.
    pub fn held_records(&self) -> usize {
        let i = &self.inner;
        i.clients.len()
            + i.pending.len()
            + i.codes.len()
            + i.access_tokens.len()
            + i.holdings.len()
            + i.access_token_families.len()
            + i.refresh.len()
            + i.refresh_families.len()
            + i.login_sessions.len()
            + i.login_attempts.len()
            + i.consents.len()
            + i.upstream_tokens.len()
            + i.documents.len()
    }
}

impl MemoryStore {
    fn insert_access_token(&self, token: &TokenDigest, record: &AccessTokenRecord) -> Admission {
        let lifetime = record.remaining(Utc::now());
        let kept = self.inner.holdings.keep(record);
        self.inner.access_token_families.upsert(family_key(&record.family), Revoked::default, |Revoked(revoked)| {
            if *revoked {
                return (Admission::FamilyRevoked, None);
            }
            self.inner.access_tokens.insert(*token, kept, lifetime);
            (Admission::Stored, Some(lifetime))
        })
    }
}

/// Runs `sweep` on `target` every `period` until the last strong reference is dropped.
pub fn sweep_while_alive<T: Send + Sync + 'static>(
    target: Weak<T>,
    period: Duration,
    sweep: fn(&T),
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(target) = target.upgrade() else { break };
            sweep(&target);
        }
    })
}

fn remaining_until(until: DateTime<Utc>) -> Duration {
    (until - Utc::now()).to_std().unwrap_or_default()
}

/// Adds `token` to its family unless the family was revoked; `store` runs under the family's
/// lock, so it cannot interleave with a revocation. Only a stored member extends the family's
/// life: a refused one leaves a tombstone's end where the revocation put it.
fn admit(
    families: &ExpiringMap<TokenDigest, Family>,
    family: &FamilyId,
    lifetime: Duration,
    token: TokenDigest,
    store: impl FnOnce(),
) -> Admission {
    families.upsert(family_key(family), Family::default, |f| {
        if f.revoked {
            return (Admission::FamilyRevoked, None);
        }
        f.join(token);
        store();
        (Admission::Stored, Some(lifetime))
    })
}

fn revoke<V: Clone>(
    families: &ExpiringMap<TokenDigest, Family>,
    tokens: &ExpiringMap<TokenDigest, V>,
    family: &FamilyId,
    until: DateTime<Utc>,
) {
    families.upsert(family_key(family), Family::default, |f| {
        f.revoked = true;
        for token in f.members.drain(..) {
            tokens.remove(&token);
        }
        ((), Some(remaining_until(until)))
    });
}

#[async_trait]
impl ClientStore for MemoryStore {
    async fn insert(&self, client: &Client, max_live: u32) -> Result<Registration, StorageError> {
        let clients = &self.inner.clients;
        let _counting = self.inner.registering.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let full = || clients.len() >= max_live as usize && clients.get(&client.client_id).is_none();
        if full() {
            // Expired clients still count until a sweep frees them: sweep once before refusing.
            clients.sweep();
            if full() {
                return Ok(Registration::Full);
            }
        }
        clients.insert(client.client_id.clone(), client.clone(), client.remaining(Utc::now()));
        Ok(Registration::Stored)
    }

    async fn get(&self, client_id: &ClientId) -> Result<Option<Client>, StorageError> {
        Ok(self.inner.clients.get(client_id))
    }

    async fn prolong(&self, client: &Client) -> Result<(), StorageError> {
        self.inner.clients.prolong(&client.client_id, client.remaining(Utc::now()), |kept| *kept = client.clone());
        Ok(())
    }
}

#[async_trait]
impl PendingAuthStore for MemoryStore {
    async fn insert(&self, request: &TokenDigest, pending: &PendingAuthorization) -> Result<(), StorageError> {
        self.inner.pending.insert(*request, pending.clone(), pending.remaining(Utc::now()));
        Ok(())
    }

    async fn get(&self, request: &TokenDigest) -> Result<Option<PendingAuthorization>, StorageError> {
        Ok(self.inner.pending.get(request))
    }

    async fn take(&self, request: &TokenDigest) -> Result<Option<PendingAuthorization>, StorageError> {
        Ok(self.inner.pending.take(request))
    }
}

#[async_trait]
impl AuthorizationCodeStore for MemoryStore {
    async fn insert(&self, code: &TokenDigest, grant: &AuthorizationGrant) -> Result<(), StorageError> {
        let exchange = Exchange { grant: grant.clone(), redeemed: false, issued: false };
        self.inner.codes.insert(*code, exchange, grant.remaining(Utc::now()));
        Ok(())
    }

    async fn redeem(&self, code: &TokenDigest) -> Result<Redemption, StorageError> {
        let outcome = self.inner.codes.update(code, |exchange| {
            if std::mem::replace(&mut exchange.redeemed, true) {
                Redemption::Replayed { grant: exchange.grant.clone(), issued: exchange.issued }
            } else {
                Redemption::Redeemed(exchange.grant.clone())
            }
        });
        Ok(outcome.unwrap_or(Redemption::Unknown))
    }

    async fn issue(&self, code: &TokenDigest, tokens: Issue<'_>) -> Result<Admission, StorageError> {
        // Each step is atomic here and a revoked family refuses every later one; the mark is
        // set last, once the tokens exist.
        if self.insert_access_token(tokens.access_token, tokens.access) == Admission::FamilyRevoked {
            return Ok(Admission::FamilyRevoked);
        }
        if let Some((token, grant)) = tokens.refresh
            && RefreshStore::insert(self, token, grant).await? == Admission::FamilyRevoked
        {
            self.inner.access_tokens.remove(tokens.access_token);
            return Ok(Admission::FamilyRevoked);
        }
        self.inner.codes.update(code, |exchange| exchange.issued = true);
        Ok(Admission::Stored)
    }
}

#[async_trait]
impl AccessTokenStore for MemoryStore {
    async fn insert(&self, token: &TokenDigest, record: &AccessTokenRecord) -> Result<Admission, StorageError> {
        Ok(self.insert_access_token(token, record))
    }

    async fn get(&self, token: &TokenDigest) -> Result<Option<AccessTokenRecord>, StorageError> {
        Ok(self.inner.access_tokens.get(token).filter(|kept| !self.inner.revoked(kept)).map(|kept| kept.record()))
    }

    async fn remove(&self, token: &TokenDigest) -> Result<(), StorageError> {
        self.inner.access_tokens.remove(token);
        Ok(())
    }

    async fn revoke_family(&self, family: &FamilyId, until: DateTime<Utc>) -> Result<(), StorageError> {
        // Its tokens are hidden from now on by the tombstone, which outlives every one of them.
        self.inner.access_token_families.upsert(family_key(family), Revoked::default, |revoked| {
            *revoked = Revoked(true);
            ((), Some(remaining_until(until)))
        });
        Ok(())
    }
}

#[async_trait]
impl RefreshStore for MemoryStore {
    async fn insert(&self, token: &TokenDigest, grant: &RefreshGrant) -> Result<Admission, StorageError> {
        let kept = grant.remaining(Utc::now());
        Ok(admit(&self.inner.refresh_families, &grant.family, kept, *token, || {
            let record = RefreshRecord { grant: grant.clone(), state: RefreshState::Active };
            self.inner.refresh.insert(*token, record, kept);
        }))
    }

    async fn get(&self, token: &TokenDigest) -> Result<Option<RefreshRecord>, StorageError> {
        Ok(self.inner.refresh.get(token))
    }

    async fn rotate(
        &self,
        token: &TokenDigest,
        at: DateTime<Utc>,
        sealed: &SealedSuccessor,
        successor: Successor<'_>,
    ) -> Result<Rotation, StorageError> {
        let inner = &self.inner;
        let kept = successor.grant.remaining(Utc::now());
        let rotation = inner.refresh_families.upsert(family_key(&successor.grant.family), Family::default, |family| {
            if family.revoked {
                return (Rotation::Unknown, None);
            }
            let outcome = inner.refresh.update(token, |record| match &record.state {
                RefreshState::Rotated { at, successor } => Rotation::AlreadyRotated { at: *at, successor: successor.clone() },
                RefreshState::Active => {
                    record.state = RefreshState::Rotated { at, successor: sealed.clone() };
                    Rotation::Rotated
                }
            });
            let outcome = outcome.unwrap_or(Rotation::Unknown);
            if outcome == Rotation::Rotated {
                family.join(*successor.token);
                let record = RefreshRecord { grant: successor.grant.clone(), state: RefreshState::Active };
                inner.refresh.insert(*successor.token, record, kept);
                // Under the refresh family's lock, which every revocation takes first: a
                // revocation cannot fall between the two.
                self.insert_access_token(successor.access_token, successor.access);
                return (outcome, Some(kept));
            }
            (outcome, None)
        });
        Ok(rotation)
    }

    async fn revoke_family(&self, family: &FamilyId, until: DateTime<Utc>) -> Result<(), StorageError> {
        revoke(&self.inner.refresh_families, &self.inner.refresh, family, until);
        Ok(())
    }
}

#[async_trait]
impl StorageHealth for MemoryStore {
    async fn ping(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
