//! Consent, the contact cap across tenants, and the providers' delivery feed, on the real
//! demo customers: opt-outs imported by CSV are excluded and counted, the contact cap holds
//! across two tenants released at the same moment, and a provider fetches exactly the
//! released deliveries and reports them, with a summary that adds up.

use std::collections::HashSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use integration_tests::{DEMO_CUSTOMERS_CSV, TenantFixture, TestApp};
use serde_json::{Value, json};

const GOLD_PLATINUM: &str = "c.segment in ('gold', 'platinum') and c.kyc_status = 'verified' \
                             and c.is_active";

fn n(value: &Value, field: &str) -> i64 {
    value[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} in {value}"))
}

/// The summary's invariants: matched = suppressed + awaiting + released; released = sent +
/// failed + pending.
fn assert_adds_up(s: &Value) {
    assert_eq!(
        n(s, "total"),
        n(s, "suppressed_by_consent")
            + n(s, "suppressed_by_pressure")
            + n(s, "awaiting_release")
            + n(s, "released"),
        "{s}"
    );
    assert_eq!(
        n(s, "released"),
        n(s, "sent") + n(s, "failed") + n(s, "pending"),
        "{s}"
    );
}

/// The demo file with a `consent_email` column: every 7th row opted out, every 11th (not
/// 7th) left empty (unknown), the others opted in.
fn demo_csv_with_consents() -> Vec<u8> {
    let text = std::fs::read_to_string(DEMO_CUSTOMERS_CSV).expect("demo file");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    header.push("consent_email".into());
    writer.write_record(&header).expect("write");
    for (i, row) in reader.records().enumerate() {
        let mut row: Vec<String> = row.expect("row").iter().map(str::to_owned).collect();
        let line = i + 1;
        row.push(
            if line % 7 == 0 {
                "opted_out"
            } else if line % 11 == 0 {
                ""
            } else {
                "opted_in"
            }
            .into(),
        );
        writer.write_record(&row).expect("write");
    }
    writer.into_inner().expect("csv")
}

/// A processed campaign of `fx` for verified gold and platinum holders.
async fn gold_platinum(app: &TestApp, fx: &TenantFixture) -> i64 {
    app.processed_campaign(
        fx,
        "Gold and platinum",
        json!({"segment": {"in": ["gold", "platinum"]}, "kyc_status": "verified"}),
    )
    .await
}

#[tokio::test]
async fn opt_outs_imported_by_csv_are_excluded_and_counted() {
    let app = TestApp::spawn().await;
    let sa = app.super_admin_token().await;
    let imported = app
        .import_customers_csv(&sa, demo_csv_with_consents())
        .await;
    assert_eq!(imported.status, StatusCode::OK, "{:?}", imported.body);
    let cells = app
        .count(
            "select count(*) from customer_consents where channel = 'email'",
            &[],
        )
        .await;
    assert_eq!(n(&imported.body, "consents_changed"), cells);
    assert!(cells > 9000, "{cells}");
    let again = app
        .import_customers_csv(&sa, demo_csv_with_consents())
        .await;
    assert_eq!(
        n(&again.body, "consents_changed"),
        0,
        "a second import changes nothing"
    );
    let history = app
        .count(
            "select count(*) from customer_consent_history where source = 'csv import'",
            &[],
        )
        .await;
    assert_eq!(history, cells);

    // The default tenant: only an explicit opt-in counts.
    let fx = app.tenant_with_offer("credit_card").await;
    app.put(
        "/sa/tenants/credit_card",
        &sa,
        json!({"unknown_consent_allowed": false}),
    )
    .await;
    let matched = app
        .count(
            &format!("select count(*) from customers c where {GOLD_PLATINUM}"),
            &[],
        )
        .await;
    let without_consent = app
        .count(
            &format!(
                "select count(*) from customers c
                 left join customer_consents k on k.customer_id = c.id and k.channel = 'email'
                 where {GOLD_PLATINUM} and coalesce(k.status, 'unknown') <> 'opted_in'"
            ),
            &[],
        )
        .await;
    let opted_out = app
        .count(
            &format!(
                "select count(*) from customers c
                 join customer_consents k on k.customer_id = c.id and k.channel = 'email'
                 where {GOLD_PLATINUM} and k.status = 'opted_out'"
            ),
            &[],
        )
        .await;
    assert!(
        opted_out > 0 && without_consent > opted_out,
        "{opted_out} {without_consent}"
    );
    let preview = app
        .post(
            "/tenants/credit_card/campaigns/audience-preview",
            &fx.maker,
            json!({"selection_criteria": {"segment": {"in": ["gold", "platinum"]}, "kyc_status": "verified"},
                   "channel": "email", "sample_size": 0}),
        )
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{:?}", preview.body);
    assert_eq!(n(&preview.body, "matched_count"), matched);
    assert_eq!(n(&preview.body, "suppressed_by_consent"), without_consent);
    assert_eq!(n(&preview.body, "releasable"), matched - without_consent);

    let id = gold_platinum(&app, &fx).await;
    assert_eq!(
        app.activate_campaign("credit_card", id, &fx.admin)
            .await
            .status,
        StatusCode::OK
    );
    let s = app.campaign_summary(&fx, id).await;
    assert_eq!(n(&s, "total"), matched);
    assert_eq!(n(&s, "suppressed_by_consent"), without_consent);
    assert_eq!(n(&s, "released"), matched - without_consent);
    assert_adds_up(&s);
    let released_without_consent = app
        .count(
            "select count(*) from campaign_customers cc
             left join customer_consents k on k.customer_id = cc.customer_id and k.channel = 'email'
             where cc.campaign_id = $1 and cc.released_at is not null
               and coalesce(k.status, 'unknown') <> 'opted_in'",
            &[&(id as i32)],
        )
        .await;
    assert_eq!(
        released_without_consent, 0,
        "nobody without consent is released"
    );

    // A tenant that counts unknown as consent excludes only the opt-outs; an SMS campaign
    // needs SMS consent, which nobody gave.
    let loan = app.tenant_with_offer("loan").await;
    let id = gold_platinum(&app, &loan).await;
    app.activate_campaign("loan", id, &loan.admin).await;
    let s = app.campaign_summary(&loan, id).await;
    assert_eq!(n(&s, "suppressed_by_consent"), opted_out);
    assert_adds_up(&s);
    let preview = app
        .post(
            "/tenants/loan/campaigns/audience-preview",
            &loan.maker,
            json!({"selection_criteria": {"segment": "gold"}, "channel": "sms", "sample_size": 0}),
        )
        .await;
    assert_eq!(
        n(&preview.body, "releasable"),
        n(&preview.body, "matched_count"),
        "unknown SMS consent counts here"
    );
}

#[tokio::test]
async fn the_contact_cap_holds_across_two_tenants_released_at_the_same_moment() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let sa = app.super_admin_token().await;
    let policy = app
        .put(
            "/sa/contact-policy",
            &sa,
            json!({"max_contacts": 1, "window_days": 30}),
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{:?}", policy.body);
    let cards = app.tenant_with_offer("credit_card").await;
    let loans = app.tenant_with_offer("loan").await;
    let a = gold_platinum(&app, &cards).await;
    let b = gold_platinum(&app, &loans).await;
    let (ra, rb) = tokio::join!(
        app.activate_campaign("credit_card", a, &cards.admin),
        app.activate_campaign("loan", b, &loans.admin)
    );
    assert_eq!((ra.status, rb.status), (StatusCode::OK, StatusCode::OK));
    let matched = app
        .count(
            &format!("select count(*) from customers c where {GOLD_PLATINUM}"),
            &[],
        )
        .await;
    let (sa_, sb) = (
        app.campaign_summary(&cards, a).await,
        app.campaign_summary(&loans, b).await,
    );
    assert_adds_up(&sa_);
    assert_adds_up(&sb);
    // Every customer was released exactly once, to one of the two; the other held it back.
    assert_eq!(
        n(&sa_, "released") + n(&sb, "released"),
        matched,
        "{sa_} {sb}"
    );
    assert_eq!(
        n(&sa_, "suppressed_by_pressure") + n(&sb, "suppressed_by_pressure"),
        matched
    );
    let over = app
        .count(
            "select count(*) from (select customer_id from customer_contacts
                                   group by customer_id having count(*) > 1) x",
            &[],
        )
        .await;
    assert_eq!(over, 0, "nobody is contacted twice within the window");
    // The preview now sees everyone at the cap.
    let preview = app
        .post(
            "/tenants/credit_card/campaigns/audience-preview",
            &cards.maker,
            json!({"selection_criteria": {"segment": {"in": ["gold", "platinum"]}, "kyc_status": "verified"},
                   "sample_size": 0}),
        )
        .await;
    assert_eq!(n(&preview.body, "suppressed_by_pressure"), matched);
    assert_eq!(n(&preview.body, "releasable"), 0);

    // A per-channel limit, and the policy's bad input.
    for (body, pointer) in [
        (
            json!({"max_contacts": 0, "window_days": 7}),
            "/max_contacts",
        ),
        (
            json!({"max_contacts": 3, "window_days": 400}),
            "/window_days",
        ),
        (
            json!({"max_contacts": 3, "window_days": 7, "channel_limits": {"fax": 1}}),
            "/channel_limits/fax",
        ),
        (
            json!({"max_contacts": 3, "window_days": 7, "channel_limits": {"sms": 4}}),
            "/channel_limits/sms",
        ),
    ] {
        let refused = app.put("/sa/contact-policy", &sa, body).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{:?}",
            refused.body
        );
        assert_eq!(refused.body["errors"][0]["pointer"], pointer);
    }
    assert_eq!(
        app.get("/sa/contact-policy", &sa).await.body["max_contacts"],
        1,
        "unchanged"
    );
    assert_eq!(
        app.get("/sa/contact-policy", &cards.admin).await.status,
        StatusCode::FORBIDDEN
    );
    let cleared = app.delete("/sa/contact-policy", &sa).await;
    assert_eq!(cleared.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/sa/contact-policy", &sa).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_provider_fetches_exactly_the_released_deliveries_and_reports_them() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let sa = app.super_admin_token().await;
    let fx = app.tenant_with_offer("credit_card").await;
    let other = app.tenant_with_offer("loan").await;
    // Three holders opted out of e-mail through the API, one of them twice (no new history).
    let ids: Vec<String> = app
        .db()
        .await
        .query(
            &format!(
                "select c.id::text from customers c where {GOLD_PLATINUM} order by c.id limit 3"
            ),
            &[],
        )
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in ids.iter().chain(ids.first()) {
        let set = app
            .put(
                &format!("/customers/{id}/consents/email"),
                &sa,
                json!({"status": "opted_out", "source": "call centre"}),
            )
            .await;
        assert_eq!(set.status, StatusCode::OK, "{:?}", set.body);
        assert_eq!(
            set.body["channels"][0],
            json!({"channel": "email", "status": "opted_out", "source": "call centre",
            "recorded_at": set.body["channels"][0]["recorded_at"], "recorded_by": "root.admin"})
        );
        assert_eq!(set.body["channels"][1]["status"], "unknown");
    }
    let consents = app
        .get(&format!("/customers/{}/consents", ids[0]), &sa)
        .await;
    assert_eq!(consents.body["history"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.get(
            "/customers/00000000-0000-0000-0000-000000000000/consents",
            &sa
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );

    let id = gold_platinum(&app, &fx).await;
    // A fourth holder opts out after selection, before release: the release judges consent
    // again and holds the delivery back.
    let late: String = app
        .db()
        .await
        .query_one(
            "select customer_id::text from campaign_customers
             where campaign_id = $1 and delivery_status = 'pending' order by customer_id limit 1",
            &[&(id as i32)],
        )
        .await
        .expect("a prepared delivery")
        .get(0);
    let withdrawn = app
        .put(
            &format!("/customers/{late}/consents/email"),
            &sa,
            json!({"status": "opted_out"}),
        )
        .await;
    assert_eq!(withdrawn.status, StatusCode::OK);
    let (key, _) = app.issue_webhook_key("credit_card", false).await;
    let (other_key, _) = app.issue_webhook_key("loan", false).await;
    let feed = |key: String, path: String| {
        let app = &app;
        async move {
            let request = Request::builder()
                .uri(path)
                .header("x-api-key", key)
                .body(Body::empty())
                .expect("request");
            app.send(request).await
        }
    };
    let first = format!("/system/campaigns/{id}/deliveries?limit=50");
    assert_eq!(
        feed(key.clone(), first.clone()).await.status,
        StatusCode::CONFLICT,
        "not active yet"
    );
    assert_eq!(
        app.activate_campaign("credit_card", id, &fx.admin)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        feed(other_key, first.clone()).await.status,
        StatusCode::NOT_FOUND,
        "another tenant's key"
    );
    assert_eq!(
        feed("omk_nonsense".into(), first.clone()).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Follow the pages; exactly the released deliveries, with the e-mail address and the
    // pinned offer content, and nothing else about the customer.
    let mut fetched = Vec::new();
    let mut next = Some(first);
    while let Some(path) = next.take() {
        let page = feed(key.clone(), path).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        assert_eq!(page.body["offer_version"], 1);
        assert_eq!(page.body["offer"], json!({"title": "Cashback 5%"}));
        assert_eq!(page.body["channel"], "email");
        for d in page.body["deliveries"].as_array().expect("deliveries") {
            let keys: HashSet<&str> = d
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                HashSet::from(["customer_id", "address", "preferred_language"])
            );
            fetched.push((
                d["customer_id"].as_str().expect("id").to_owned(),
                d["address"].clone(),
            ));
        }
        next = page.headers.get(header::LINK).map(|link| {
            let link = link.to_str().expect("link");
            link[1..link.find('>').expect(">")].to_owned()
        });
    }
    let expected: Vec<(String, Value)> = app
        .db()
        .await
        .query(
            "select cc.customer_id::text, c.email from campaign_customers cc
             join customers c on c.id = cc.customer_id
             where cc.campaign_id = $1 and cc.released_at is not null order by cc.customer_id",
            &[&(id as i32)],
        )
        .await
        .expect("released")
        .iter()
        .map(|r| (r.get::<_, String>(0), json!(r.get::<_, Option<String>>(1))))
        .collect();
    assert_eq!(fetched, expected);
    assert!(
        ids.iter()
            .all(|opted_out| fetched.iter().all(|(c, _)| c != opted_out))
    );
    // A customer who opts out after the release drops out of the feed at once.
    let quitter = fetched[1].0.clone();
    app.put(
        &format!("/customers/{quitter}/consents/email"),
        &sa,
        json!({"status": "opted_out"}),
    )
    .await;
    let again = feed(
        key.clone(),
        format!("/system/campaigns/{id}/deliveries?limit=200"),
    )
    .await;
    assert!(
        again.body["deliveries"]
            .as_array()
            .expect("deliveries")
            .iter()
            .all(|d| d["customer_id"] != json!(quitter))
    );

    // Report them: every fifth failed, one customer unsubscribes.
    let now = chrono::Utc::now().to_rfc3339();
    let mut items: Vec<Value> = fetched
        .iter()
        .enumerate()
        .map(|(i, (customer, _))| {
            json!({"campaign_id": id, "customer_id": customer,
                   "status": if i % 5 == 4 { "failed" } else { "sent" }, "sent_at": now})
        })
        .collect();
    items.push(json!({"campaign_id": id, "customer_id": fetched[0].0, "status": "unsubscribed", "sent_at": now}));
    items.push(json!({"campaign_id": id, "customer_id": ids[0], "status": "sent", "sent_at": now}));
    let request = Request::builder()
        .method(Method::POST)
        .uri("/system/campaigns/update-delivery-status")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-api-key", &key)
        .body(Body::from(Value::Array(items).to_string()))
        .expect("request");
    let answer = app.send(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let total = fetched.len() as i64;
    assert_eq!(
        answer.body["summary"],
        json!({"updated": total + 1, "unchanged": 0, "not_found": 1, "invalid": 0}),
        "a suppressed delivery takes no report"
    );
    let consent = app
        .get(&format!("/customers/{}/consents", fetched[0].0), &sa)
        .await;
    assert_eq!(consent.body["channels"][0]["status"], "opted_out");
    assert_eq!(
        consent.body["channels"][0]["source"],
        "provider: unsubscribed"
    );
    let after = feed(key.clone(), format!("/system/campaigns/{id}/deliveries")).await;
    assert_eq!(after.body["deliveries"], json!([]), "nothing left to send");

    let s = app.campaign_summary(&fx, id).await;
    assert_adds_up(&s);
    assert_eq!(n(&s, "released"), total);
    assert_eq!(
        n(&s, "suppressed_by_consent"),
        4,
        "three at selection, one at release"
    );
    assert!(fetched.iter().all(|(c, _)| *c != late));
    assert_eq!(n(&s, "failed"), total / 5);
    assert_eq!(n(&s, "sent"), total - total / 5);
    assert_eq!(n(&s, "pending"), 0);
    // Every released delivery holds its slot, a failed one too (V022: the provider may
    // retry it until the campaign's end); only the sent ones are settled at their send.
    let counted = app
        .count(
            "select count(*) from customer_contacts where campaign_id = $1",
            &[&(id as i32)],
        )
        .await;
    assert_eq!(counted, total);
    let settled = app
        .count(
            "select count(*) from customer_contacts where campaign_id = $1 and settled",
            &[&(id as i32)],
        )
        .await;
    assert_eq!(settled, n(&s, "sent"));
    let _ = other;
}

#[test]
fn the_consent_and_cap_verdicts_are_written_once() {
    // Every statement that judges consent or the cap calls the functions of migration V015;
    // none spells a rule out again.
    for (name, source) in [
        (
            "release.sql",
            include_str!("../../shared/src/db/campaigns/release.sql"),
        ),
        (
            "db/campaigns/processing.rs",
            include_str!("../../shared/src/db/campaigns/processing.rs"),
        ),
        (
            "db/campaigns/audience.rs",
            include_str!("../../shared/src/db/campaigns/audience.rs"),
        ),
    ] {
        for copy in ["= 'opted_in'", ">= p.max_contacts", ">= max_contacts"] {
            assert!(!source.contains(copy), "{name} writes `{copy}` itself");
        }
    }
    let release = include_str!("../../shared/src/db/campaigns/release.sql");
    assert!(release.contains("consent_allows(") && release.contains("contact_cap_reached("));
}

#[tokio::test]
async fn the_verdicts_are_inlined_and_judge_as_the_rule_says() {
    let app = TestApp::spawn().await;
    let db = app.db().await;
    // (status, unknown allowed) → consent; (contacts, on channel, max, channel max) → capped.
    for (status, unknown, expected) in [
        (Some("opted_in"), false, true),
        (Some("opted_out"), true, false),
        (None, true, true),
        (None, false, false),
    ] {
        let allowed: bool = db
            .query_one("select consent_allows($1, $2)", &[&status, &unknown])
            .await
            .expect("consent_allows")
            .get(0);
        assert_eq!(allowed, expected, "{status:?} {unknown}");
    }
    for (contacts, on_channel, max, channel_max, expected) in [
        (None, None, Some(3), None, false),
        (Some(2i64), Some(2i64), Some(3), None, false),
        (Some(3), Some(0), Some(3), None, true),
        (Some(1), Some(1), Some(3), Some(1), true),
        (Some(5), Some(5), None, None, false),
    ] {
        let capped: bool = db
            .query_one(
                "select contact_cap_reached($1, $2, $3, $4)",
                &[&contacts, &on_channel, &max, &channel_max],
            )
            .await
            .expect("contact_cap_reached")
            .get(0);
        assert_eq!(
            capped, expected,
            "{contacts:?} {on_channel:?} {max:?} {channel_max:?}"
        );
    }
    // Inlined: the plan holds the expression, not a call per row.
    let plan: Vec<String> = db
        .query(
            "explain (verbose, costs off)
             select consent_allows(status, true), contact_cap_reached(1, 1, 1, 1)
             from customer_consents",
            &[],
        )
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(!plan.contains("consent_allows"), "{plan}");
    assert!(plan.contains("opted_in"), "{plan}");
}
