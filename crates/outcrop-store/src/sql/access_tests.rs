use super::*;

#[tokio::test]
async fn agreements_and_use_cases_persist() {
    for engine in test_engines::each().await {
        let store = engine.open().await;
        store.ensure_defaults().await.unwrap();
        assert!(!store
            .has_agreement(DEFAULT_ACCOUNT, "anthropic.claude-v2")
            .await
            .unwrap());
        assert!(store
            .create_agreement(DEFAULT_ACCOUNT, "anthropic.claude-v2")
            .await
            .unwrap());
        assert!(
            !store
                .create_agreement(DEFAULT_ACCOUNT, "anthropic.claude-v2")
                .await
                .unwrap(),
            "second time: already there"
        );
        assert!(store.use_case(DEFAULT_ACCOUNT).await.unwrap().is_none());
        store
            .put_use_case(DEFAULT_ACCOUNT, b"{\"companyName\":\"A\"}")
            .await
            .unwrap();
        store
            .put_use_case(DEFAULT_ACCOUNT, b"{\"companyName\":\"B\"}")
            .await
            .unwrap();
        drop(store);
        let store = engine.open().await;
        assert!(store
            .has_agreement(DEFAULT_ACCOUNT, "anthropic.claude-v2")
            .await
            .unwrap());
        assert_eq!(
            store.use_case(DEFAULT_ACCOUNT).await.unwrap().unwrap(),
            b"{\"companyName\":\"B\"}"
        );
        assert!(store
            .delete_agreement(DEFAULT_ACCOUNT, "anthropic.claude-v2")
            .await
            .unwrap());
        assert!(!store
            .delete_agreement(DEFAULT_ACCOUNT, "anthropic.claude-v2")
            .await
            .unwrap());
        assert!(!store
            .has_agreement(DEFAULT_ACCOUNT, "anthropic.claude-v2")
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn users_get_working_keys() {
    for engine in test_engines::each().await {
        let store = engine.open().await;
        store.ensure_defaults().await.unwrap();
        assert!(
            store
                .create_access_key(DEFAULT_ACCOUNT, "alice")
                .await
                .unwrap()
                .is_none(),
            "no such user"
        );
        assert_eq!(
            store
                .create_user(DEFAULT_ACCOUNT, "alice")
                .await
                .unwrap()
                .as_deref(),
            Some("arn:aws:iam::000000000000:user/alice")
        );
        assert!(
            store
                .create_user(DEFAULT_ACCOUNT, "alice")
                .await
                .unwrap()
                .is_none(),
            "taken"
        );
        let a = store
            .create_access_key(DEFAULT_ACCOUNT, "alice")
            .await
            .unwrap()
            .unwrap();
        let b = store
            .create_access_key(DEFAULT_ACCOUNT, "alice")
            .await
            .unwrap()
            .unwrap();
        assert_ne!(a.access_key_id, b.access_key_id);
        assert!(a.access_key_id.starts_with("AKIA") && a.access_key_id.len() == 20);
        assert_eq!(a.secret.expose().len(), 40);
        let cred = store.credential(&a.access_key_id).await.unwrap().unwrap();
        assert_eq!(cred.secret.expose(), a.secret.expose());
        assert_eq!(cred.principal_arn, "arn:aws:iam::000000000000:user/alice");
        assert!(!cred.loopback_only);
    }
}

#[tokio::test]
async fn quota_overrides_replace_and_delete() {
    for engine in test_engines::each().await {
        let store = engine.open().await;
        let mut q = crate::QuotaOverride {
            model_id: "meta.llama3-8b-instruct-v1:0".into(),
            requests_per_minute: Some(5),
            tokens_per_minute: None,
            tokens_per_day: Some(u64::MAX),
        };
        store.put_quota_override(&q).await.unwrap();
        q.tokens_per_minute = Some(1000);
        store.put_quota_override(&q).await.unwrap();
        let mut want = q.clone();
        want.tokens_per_day = Some(i64::MAX as u64); // stored as SQLite's largest integer
        assert_eq!(store.quota_overrides().await.unwrap(), vec![want]);
        assert!(store.delete_quota_override(&q.model_id).await.unwrap());
        assert!(!store.delete_quota_override(&q.model_id).await.unwrap());
        assert!(store.quota_overrides().await.unwrap().is_empty());
    }
}
