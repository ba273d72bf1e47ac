//! `Backends::connect` on the real services: what each role prepares.

use kiln_shared::config::Settings;
use kiln_shared::{Backends, Role};

async fn settings(artifacts: &std::path::Path) -> Settings {
    let admin_url = std::env::var("KILN_TEST_DATABASE_URL").expect("run the tests through ops/test.sh");
    let redis_url = std::env::var("KILN_TEST_REDIS_URL").expect("run the tests through ops/test.sh");
    let database_url = kiln_shared::db::create_database(&admin_url, "kiln_test")
        .await
        .unwrap();
    Settings::from_vars([
        ("KILN_DATABASE_URL".to_owned(), database_url),
        ("KILN_REDIS_URL".to_owned(), redis_url),
        (
            "KILN_REDIS_PREFIX".to_owned(),
            format!("test-backends-{}", ulid::Ulid::new()),
        ),
        (
            "KILN_ARTIFACTS".to_owned(),
            format!("file://{}", artifacts.display()),
        ),
        ("KILN_PREVIEW_DOMAIN".to_owned(), "preview.test".to_owned()),
    ])
    .unwrap()
}

async fn has_versions_table(backends: &Backends) -> bool {
    sqlx::query_scalar::<_, bool>("select to_regclass('versions') is not null")
        .fetch_one(&backends.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_builder_gets_migrations_and_its_consumer_group() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path()).await;
    let backends = Backends::connect(&settings, Role::Builder).await.unwrap();
    assert!(has_versions_table(&backends).await);
    // The group exists: a reader of it gets nothing (rather than a NOGROUP error).
    let mut reader = backends.queue.reader(std::time::Duration::from_millis(10));
    assert!(reader.read("test-consumer").await.unwrap().is_none());
    assert_eq!(backends.queue.depth().await.unwrap(), 0);
    kiln_shared::redis::ping(&backends.redis).await.unwrap();
    backends.artifacts.check().await.unwrap();
    assert!(backends
        .urls
        .version_url(kiln_shared::domain::VersionId::new())
        .ends_with(".preview.test:8081/"));
}

#[tokio::test]
async fn maintenance_applies_no_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path()).await;
    let backends = Backends::connect(&settings, Role::Maintenance).await.unwrap();
    assert!(!has_versions_table(&backends).await);
    let api = Backends::connect(&settings, Role::Api { preview_port: 4000 })
        .await
        .unwrap();
    assert!(has_versions_table(&api).await);
    assert!(api
        .urls
        .version_url(kiln_shared::domain::VersionId::new())
        .ends_with(".preview.test:4000/"));
}
