//! Findings of the outside security review that are not about one resource: response
//! headers, request limits, duplicate JSON keys, contact details, and row-level security.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use integration_tests::TestApp;
use serde_json::json;
use shared::db::TenantTx;
use shared::domain::TenantName;

#[tokio::test]
async fn every_answer_carries_nosniff_and_api_answers_are_not_cached() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    for response in [
        app.get("/users/me", &sa).await,
        app.get("/sa/users", &sa).await,
        app.call(Method::GET, "/health", None, None).await,
        app.call(Method::GET, "/users/me", None, None).await,
    ] {
        assert_eq!(response.headers["x-content-type-options"], "nosniff");
        assert_eq!(response.headers[header::CACHE_CONTROL], "no-store");
    }
}

#[tokio::test]
async fn the_docs_page_forbids_framing_and_foreign_scripts() {
    let app = TestApp::spawn().await;
    for path in ["/docs/", "/docs/swagger-ui.css"] {
        let response = app.call(Method::GET, path, None, None).await;
        assert_eq!(response.status, StatusCode::OK, "{path}");
        assert_eq!(response.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(response.headers["x-content-type-options"], "nosniff");
        let policy = response.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("unsafe-eval"), "{policy}");
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_problem_details() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    let missing = app.get("/no/such/route", &sa).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.content_type(), "application/problem+json");
    assert_eq!(missing.body["status"], 404);
    let wrong_method = app.call(Method::PATCH, "/sa/users", Some(&sa), None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.content_type(), "application/problem+json");
    assert_eq!(wrong_method.body["status"], 405);
    let allow = wrong_method.headers[header::ALLOW].to_str().expect("ascii");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

#[tokio::test]
async fn oversized_json_bodies_answer_413() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    let body = json!({"name": "big_bank", "description": "x".repeat(1024 * 1024 + 1)});
    let response = app.post("/sa/tenants", &sa, body).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.content_type(), "application/problem+json");
    let login = Request::builder()
        .method(Method::POST)
        .uri("/auth/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!(
            "{{\"username\": \"a\", \"password\": \"{}\"}}",
            "p".repeat(2 * 1024 * 1024)
        )))
        .expect("request");
    assert_eq!(app.send(login).await.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn duplicate_keys_anywhere_in_a_body_answer_422_with_their_pointer() {
    let app = TestApp::spawn().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let raw = |path: &str, token: &str, body: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(body))
            .expect("request")
    };
    let cases = [
        (
            "/tenants/credit_card/offers",
            r#"{"data": {"title": "A", "fee": 0, "fee": 499}}"#,
            "/data/fee",
        ),
        (
            "/tenants/credit_card/offers",
            r#"{"data": {"title": "A"}, "data": {"title": "B"}}"#,
            "/data",
        ),
        (
            "/tenants/credit_card/campaigns/audience-preview",
            r#"{"selection_criteria": {"any": [{"segment": "gold", "segment": "platinum"}]}}"#,
            "/selection_criteria/any/0/segment",
        ),
    ];
    for (path, body, pointer) in cases {
        let response = app.send(raw(path, &fx.maker, body)).await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            response.body
        );
        assert_eq!(response.body["errors"][0]["pointer"], pointer, "{body}");
    }
    assert_eq!(
        app.count("select count(*) from offers", &[]).await,
        1,
        "nothing written"
    );
}

#[tokio::test]
async fn contact_details_need_the_contact_permission() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let id = app
        .processed_campaign(&fx, "Platinum", json!({"segment": "platinum"}))
        .await;
    let path = format!("/tenants/credit_card/campaigns/{id}/customers?limit=5");
    for token in [&fx.viewer, &fx.maker, &fx.checker] {
        let page = app.get(&path, token).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
        let rows = page.body.as_array().expect("rows");
        assert_eq!(rows.len(), 5);
        let text = page.body.to_string();
        assert!(rows.iter().all(|r| r.get("contact").is_none()), "{text}");
        assert!(!text.contains('@'), "no e-mail address: {text}");
    }
    let page = app.get(&path, &fx.admin).await;
    let first = &page.body[0];
    assert!(first["contact"]["full_name"].is_string(), "{first}");
    assert!(
        first["contact"]["email"]
            .as_str()
            .is_some_and(|e| e.contains('@')),
        "{first}"
    );
}

/// Two tenants with an offer, its audit trail and a webhook key each, for the row-level
/// security tests.
async fn two_tenants(app: &TestApp) {
    let sa = app.super_admin_token().await;
    for tenant in ["credit_card", "loan"] {
        app.tenant_with_offer(tenant).await;
        let key = app
            .post(
                "/sa/webhook-keys",
                &sa,
                json!({"tenant_name": tenant, "name": "provider"}),
            )
            .await;
        assert_eq!(key.status, StatusCode::CREATED, "{:?}", key.body);
    }
}

#[tokio::test]
async fn an_unfiltered_select_in_a_tenant_transaction_sees_only_that_tenant() {
    let app = TestApp::spawn().await;
    two_tenants(&app).await;
    let tenant = TenantName::parse("loan").expect("name");
    for pool in [&app.state.pool, &app.state.platform] {
        let mut client = pool.get().await.expect("client");
        let tx = TenantTx::begin(&mut client, &tenant)
            .await
            .expect("transaction");
        for table in [
            "offers",
            "offer_audit_logs",
            "tenant_roles",
            "user_tenant_roles",
            "webhook_keys",
        ] {
            // Deliberately no `where tenant_name = …`: the policy is the only filter.
            let tenants: Vec<String> = tx
                .query(
                    &format!("select distinct tenant_name from {table} order by 1"),
                    &[],
                )
                .await
                .expect("select")
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert_eq!(tenants, ["loan"], "{table}");
        }
        // Nor can it write another tenant's rows.
        let moved = tx
            .execute(
                "update offers set tenant_name = 'credit_card' where tenant_name = 'loan'",
                &[],
            )
            .await;
        assert!(moved.is_err(), "the policy's check refuses the row");
    }
}

#[tokio::test]
async fn a_connection_with_no_tenant_sees_no_tenant_rows() {
    let app = TestApp::spawn().await;
    two_tenants(&app).await;
    let client = app.state.pool.get().await.expect("client");
    for table in [
        "offers",
        "offer_audit_logs",
        "campaigns",
        "campaign_customers",
        "tenant_roles",
        "user_tenant_roles",
        "webhook_keys",
    ] {
        let n: i64 = client
            .query_one(&format!("select count(*) from {table}"), &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(n, 0, "{table}");
    }
    // The platform scope sees both tenants (super-admin paths, the processor).
    let platform = app.state.platform.get().await.expect("client");
    let n: i64 = platform
        .query_one("select count(distinct tenant_name) from offers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 2);
    // The platform pool's role sees them by membership of offers_platform; DATABASE_URL's
    // role as the platform pool (no DATABASE_PLATFORM_URL) does not: the scope is a role.
    let url = integration_tests::role_url_for(integration_tests::API_ROLE, &app.database);
    let config =
        shared::config::DatabaseConfig::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone()))
            .expect("config");
    let pool = shared::db::pool(&config, shared::db::Scope::Platform).expect("pool");
    let n: i64 = pool
        .get()
        .await
        .expect("client")
        .query_one("select count(distinct tenant_name) from offers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "the tenant role holds no platform scope");
}

/// Injected SQL on a tenant route's connection: the old platform switch, a setting, no
/// longer opens anything, inside a tenant transaction or outside one.
#[tokio::test]
async fn a_tenant_connection_cannot_claim_the_platform_scope() {
    let app = TestApp::spawn().await;
    two_tenants(&app).await;
    let mut client = app.state.pool.get().await.expect("client");
    client
        .batch_execute("set app.scope = 'platform'")
        .await
        .expect("any session may set a setting");
    let n: i64 = client
        .query_one("select count(*) from offers", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "no tenant rows outside a tenant transaction");
    let tenant = TenantName::parse("loan").expect("name");
    let tx = TenantTx::begin(&mut client, &tenant)
        .await
        .expect("transaction");
    tx.batch_execute("set local app.scope = 'platform'")
        .await
        .expect("set");
    let tenants: Vec<String> = tx
        .query("select distinct tenant_name from offers order by 1", &[])
        .await
        .expect("select")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tenants, ["loan"], "still one tenant");
    let role = tx
        .batch_execute("set local role offers_platform")
        .await
        .expect_err("the group role is not the tenant role's to take");
    assert_eq!(
        role.as_db_error().map(|e| e.code().code()),
        Some("42501"),
        "{role}"
    );
}

#[tokio::test]
async fn the_api_role_owns_nothing_and_cannot_bypass_the_policies() {
    let app = TestApp::spawn().await;
    let client = app.state.pool.get().await.expect("client");
    let row = client
        .query_one(
            "select r.rolsuper, r.rolbypassrls,
                    (select count(*) from pg_tables t
                     where t.schemaname = 'public' and t.tableowner = current_user)
             from pg_roles r where r.rolname = current_user",
            &[],
        )
        .await
        .expect("role");
    let (superuser, bypass, owned): (bool, bool, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((superuser, bypass, owned), (false, false, 0));
    // Every table that carries a tenant (its own column, or its campaign's or key's) has its
    // policy forced.
    let forced: i64 = client
        .query_one(
            "select count(*) from pg_class
             where relname in ('offers', 'offer_audit_logs', 'campaigns', 'campaign_customers',
                               'tenant_roles', 'user_tenant_roles', 'webhook_keys',
                               'campaign_outbox', 'tenant_access_audit_logs',
                               'offer_versions', 'campaign_audit_logs', 'customer_contacts',
                               'campaign_processing_ranges', 'webhook_messages',
                               'campaign_release_ranges')
               and relrowsecurity and relforcerowsecurity",
            &[],
        )
        .await
        .expect("pg_class")
        .get(0);
    assert_eq!(forced, 15);
    // And no table with a tenant_name column is left without.
    let unguarded: Vec<String> = client
        .query(
            "select c.relname::text from pg_class c
             join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_name'
             where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
               and not (c.relrowsecurity and c.relforcerowsecurity)",
            &[],
        )
        .await
        .expect("pg_class")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(unguarded.is_empty(), "{unguarded:?}");
}

#[test]
fn tenant_route_functions_never_use_the_platform_pool() {
    // The tenant-scoped functions reach the database only through tenant transactions on
    // the tenant pool; the platform scope is for super-admin and system paths. Every source
    // file of theirs is read.
    for name in ["offers-api", "campaigns-api"] {
        let dir = format!("{}/../functions/{name}/src", env!("CARGO_MANIFEST_DIR"));
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("source folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).expect("source");
                assert!(
                    !source.contains("platform"),
                    "{} must not use the platform pool",
                    path.display()
                );
                files += 1;
            }
        }
        assert!(files >= 3, "{name}: {files} files read");
    }
}

#[tokio::test]
async fn an_upgrade_keeps_the_old_platform_role_in_the_platform_scope() {
    // A deployment from before V014 put its platform login role in the platform scope with a
    // role default (`alter role … set app.scope = 'platform'`); V014's role block makes that
    // role a member of offers_platform, so the upgrade needs no step by hand.
    let app = TestApp::spawn().await;
    let owner = app.owner_pool().get().await.expect("owner client");
    let role = format!("offers_legacy_platform_{}", std::process::id());
    owner
        .batch_execute(&format!(
            "drop role if exists {role}; create role {role} login in role offers_api;
             alter role {role} set app.scope = 'platform'"
        ))
        .await
        .expect("a role of the old scheme");
    let migration = include_str!("../../migrations/V014__second_review.sql");
    let start = migration.find("do $$").expect("the role block");
    let end = start + migration[start..].find("$$;").expect("its end") + 3;
    owner
        .batch_execute(&migration[start..end])
        .await
        .expect("V014's role block runs again");
    let member: bool = owner
        .query_one(
            "select pg_has_role($1, 'offers_platform', 'member')",
            &[&role],
        )
        .await
        .expect("membership")
        .get(0);
    owner
        .batch_execute(&format!("drop role {role}"))
        .await
        .expect("drop the role");
    assert!(member, "{role} joined offers_platform");
}

/// What the tenant login role may write, table by table (docs/security.md, "What the tenant
/// role may write"): the tenant tables, the audit trails insert-only. Every other write,
/// and every write of a shared table, is refused with 42501.
const TENANT_ROLE_WRITES: &[(&str, &[&str])] = &[
    ("campaign_archives", &["insert", "update", "delete"]),
    ("campaign_audit_logs", &["insert"]),
    ("campaign_customers", &["insert", "update", "delete"]),
    ("campaign_outbox", &["insert", "update", "delete"]),
    (
        "campaign_processing_ranges",
        &["insert", "update", "delete"],
    ),
    ("campaign_release_ranges", &["insert", "update", "delete"]),
    ("campaigns", &["insert", "update", "delete"]),
    ("conversions", &["insert"]),
    ("customer_contacts", &["insert", "update", "delete"]),
    ("offer_audit_logs", &["insert"]),
    ("offer_versions", &["insert"]),
    ("offers", &["insert", "update", "delete"]),
    ("tenant_access_audit_logs", &["insert"]),
    ("tenant_roles", &["insert", "update", "delete"]),
    ("user_tenant_roles", &["insert", "update", "delete"]),
    ("webhook_keys", &["insert", "update", "delete"]),
    ("webhook_messages", &["insert", "update", "delete"]),
];

/// Review 3, finding 7: as the tenant pool's role, `update users set is_super_admin =
/// true`, a tenant's settings, `delete from contact_policy` and the import ledger all
/// succeeded. Every table and every write is tried now; only the documented ones pass the
/// privilege check (row-level security may still refuse the row: that is the second wall,
/// not this one).
#[tokio::test]
async fn the_tenant_role_writes_tenant_tables_only() {
    let app = TestApp::spawn().await;
    let client = app.state.pool.get().await.expect("tenant role");
    let tables: Vec<(String, String)> = client
        .query(
            "select t.table_name::text,
                    (select c.column_name::text from information_schema.columns c
                     where c.table_schema = 'public' and c.table_name = t.table_name
                       and c.column_name <> 'created_at' and c.is_identity = 'NO'
                       and c.is_generated = 'NEVER'
                     order by c.ordinal_position limit 1)
             from information_schema.tables t
             where t.table_schema = 'public' and t.table_type = 'BASE TABLE'
             order by t.table_name::text collate \"C\"",
            &[],
        )
        .await
        .expect("tables")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(tables.len() > 20, "{tables:?}");
    let mut allowed = Vec::new();
    for (table, column) in &tables {
        for (op, sql) in [
            ("insert", format!("insert into {table} default values")),
            (
                "update",
                format!("update {table} set {column} = {column} where false"),
            ),
            ("delete", format!("delete from {table} where false")),
        ] {
            let outcome = client
                .batch_execute(&format!("begin; {sql}; rollback"))
                .await;
            let _ = client.batch_execute("rollback").await;
            let refused = outcome.as_ref().err().is_some_and(|err| {
                err.as_db_error().is_some_and(|db| {
                    db.code().code() == "42501" && db.message().starts_with("permission denied")
                })
            });
            if !refused {
                allowed.push((table.clone(), op));
            }
        }
    }
    let expected: Vec<(String, &str)> = TENANT_ROLE_WRITES
        .iter()
        .flat_map(|(table, ops)| ops.iter().map(move |op| ((*table).to_owned(), *op)))
        .collect();
    assert_eq!(allowed, expected);
}
