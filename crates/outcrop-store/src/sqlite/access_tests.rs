use super::*;

#[tokio::test]
async fn agreements_and_use_cases_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outcrop.db");
    let store = SqliteStore::open(&path).await.unwrap();
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
    let store = SqliteStore::open(&path).await.unwrap();
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
