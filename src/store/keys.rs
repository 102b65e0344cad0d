//! Tenant API keys and the hash index that authenticates requests.

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, abort};

use super::{
    Page, Result, SledStore, StoreError, decode, encode, list_page, scoped_key, tenant_prefix,
};
use crate::model::ids::{KeyId, TenantId};
use crate::model::tenant::ApiKey;

/// A key record: the public part plus the token's hash.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredKey {
    pub key: ApiKey,
    #[serde(with = "hex_bytes")]
    pub hash: [u8; 32],
}

super::record::json_records!(StoredKey);

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

impl SledStore {
    /// Stores a key and its hash index together; fails if the tenant is gone.
    pub async fn create_key(&self, key: &ApiKey, token_hash: [u8; 32]) -> Result<()> {
        let record = encode(&StoredKey {
            key: key.clone(),
            hash: token_hash,
        });
        let item = scoped_key(&key.tenant_id, key.id);
        (&self.tenants, &self.keys, &self.key_hashes).transaction(|(tenants, keys, hashes)| {
            if tenants.get(key.tenant_id.to_string().as_bytes())?.is_none() {
                return abort(StoreError::NotFound("tenant"));
            }
            keys.insert(item.as_slice(), record.as_slice())?;
            hashes.insert(&token_hash[..], item.as_slice())?;
            Ok(())
        })?;
        self.flush().await
    }

    pub fn list_keys(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<ApiKey>> {
        let page = list_page(
            &self.keys,
            &tenant_prefix(tenant),
            after,
            limit,
            |k: &StoredKey| k.key.id.to_string(),
        )?;
        Ok(Page {
            items: page.items.into_iter().map(|k| k.key).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Revokes a key: it stops authenticating at once. Returns whether it existed.
    pub async fn delete_key(&self, tenant: &TenantId, id: &KeyId) -> Result<bool> {
        let item = scoped_key(tenant, id);
        let existed = (&self.keys, &self.key_hashes).transaction(|(keys, hashes)| {
            let Some(record) = keys.remove(item.as_slice())? else {
                return Ok(false);
            };
            let stored: StoredKey = decode(&record).map_err(ConflictableTransactionError::Abort)?;
            hashes.remove(&stored.hash[..])?;
            Ok(true)
        })?;
        self.flush().await?;
        Ok(existed)
    }

    /// The key whose token hashes to `hash`, if any.
    pub fn key_by_token_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKey>> {
        let Some(item) = self.key_hashes.get(hash)? else {
            return Ok(None);
        };
        self.keys
            .get(item)?
            .map(|v| decode::<StoredKey>(&v).map(|k| k.key))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::ids::KeyId;
    use crate::model::tenant::{ApiKey, Scope, hash_token};
    use crate::store::test_support::{temp_sled, tenant};

    #[tokio::test]
    async fn keys_authenticate_until_revoked_or_tenant_deleted() {
        let (store, _dir) = temp_sled();
        let tenant = tenant("t");
        store.create_tenant(&tenant).await.unwrap();
        let make = |name: &str| ApiKey {
            id: KeyId::generate(),
            tenant_id: tenant.id,
            name: name.into(),
            scopes: vec![Scope::Publish],
            token_prefix: "hgk_abc".into(),
            created_at: crate::time::now(),
        };
        let (k1, k2) = (make("one"), make("two"));
        store.create_key(&k1, hash_token("tok1")).await.unwrap();
        store.create_key(&k2, hash_token("tok2")).await.unwrap();
        assert_eq!(
            store
                .key_by_token_hash(&hash_token("tok1"))
                .unwrap()
                .unwrap()
                .id,
            k1.id
        );
        assert_eq!(
            store.list_keys(&tenant.id, None, 10).unwrap().items.len(),
            2
        );

        assert!(store.delete_key(&tenant.id, &k1.id).await.unwrap());
        assert!(
            store
                .key_by_token_hash(&hash_token("tok1"))
                .unwrap()
                .is_none()
        );
        assert!(!store.delete_key(&tenant.id, &k1.id).await.unwrap());

        store.delete_tenant(&tenant.id).await.unwrap();
        assert!(
            store
                .key_by_token_hash(&hash_token("tok2"))
                .unwrap()
                .is_none()
        );
        // A key for a tenant that no longer exists is refused.
        assert!(
            store
                .create_key(&make("late"), hash_token("tok3"))
                .await
                .is_err()
        );
    }
}
