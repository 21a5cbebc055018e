//! The operator's view of the SQLite records: plain queries over the live rows.

use async_trait::async_trait;
use mcp_oauth_domain::StorageError;
use mcp_oauth_domain::client::Client;
use mcp_oauth_domain::identity::{ClientId, Subject};
use mcp_oauth_domain::inventory::{HeldGrant, Holder, Inventory, RecordCounts, grants_of};
use mcp_oauth_domain::ports::FamilyId;
use sqlx::Row;

use super::{SqliteStore, TABLES, decode, now_ms, unavailable};

/// The families, users and clients of live tokens whose `field` is `value`.
const HELD: &str = "SELECT family, json_extract(body, '$.subject') AS subject, json_extract(body, '$.client_id') AS client_id \
     FROM access_tokens WHERE expires_at > $1 AND json_extract(body, $2) = $3 \
     UNION SELECT family, json_extract(body, '$.subject'), json_extract(body, '$.client_id') \
     FROM refresh_tokens WHERE expires_at > $1 AND json_extract(body, $2) = $3";

fn corrupt(error: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(error.to_string())
}

#[async_trait]
impl Inventory for SqliteStore {
    async fn clients(&self) -> Result<Vec<Client>, StorageError> {
        let rows = sqlx::query("SELECT body FROM clients WHERE expires_at > $1")
            .bind(now_ms())
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable)?;
        rows.iter().map(|row| decode(row, "body")).collect()
    }

    async fn delete_client(&self, client_id: &ClientId) -> Result<bool, StorageError> {
        let deleted = sqlx::query("DELETE FROM clients WHERE client_id = $1 AND expires_at > $2")
            .bind(client_id.as_str())
            .bind(now_ms())
            .execute(&self.writer)
            .await
            .map_err(unavailable)?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn grants(&self, holder: &Holder) -> Result<Vec<HeldGrant>, StorageError> {
        let (field, value) = match holder {
            Holder::User(subject) => ("$.subject", subject.as_str()),
            Holder::Client(client_id) => ("$.client_id", client_id.as_str()),
        };
        let rows = sqlx::query(HELD).bind(now_ms()).bind(field).bind(value).fetch_all(&self.reader).await.map_err(unavailable)?;
        let mut triples = Vec::with_capacity(rows.len());
        for row in rows {
            let family: String = row.try_get("family").map_err(corrupt)?;
            let subject: String = row.try_get("subject").map_err(corrupt)?;
            let client_id: String = row.try_get("client_id").map_err(corrupt)?;
            triples.push((
                serde_json::from_value(family.into()).map_err(corrupt)?,
                Subject::parse(&subject).map_err(corrupt)?,
                ClientId::from(client_id),
            ));
        }
        Ok(grants_of(holder, triples.iter().map(|(f, s, c): &(FamilyId, Subject, ClientId)| (f, s, c))))
    }

    async fn counts(&self) -> Result<RecordCounts, StorageError> {
        let now = now_ms();
        let mut counts = [0u64; 11];
        for (count, table) in counts.iter_mut().zip(TABLES) {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE expires_at > $1");
            let n: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(now).fetch_one(&self.reader).await.map_err(unavailable)?;
            *count = u64::try_from(n).unwrap_or_default();
        }
        Ok(RecordCounts::from_ordered(counts))
    }

    async fn purge_expired(&self) -> Result<u64, StorageError> {
        self.sweep().await
    }
}
