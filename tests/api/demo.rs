//! `offerctl demo` over real HTTP: the whole story against a server on a loopback port,
//! on the real demo customers, twice (it must be re-runnable and leave the database usable).

use integration_tests::{SUPER_ADMIN, SUPER_ADMIN_PASSWORD, TestApp};
use offerctl_gateway::demo;

const GOLD_PLATINUM_VERIFIED: &str = "select count(*) from customers
     where segment in ('gold', 'platinum') and kyc_status = 'verified' and is_active";

#[tokio::test]
async fn the_demo_walks_the_story_on_the_real_customers_and_can_run_again() {
    let app = TestApp::spawn().await;
    app.import_demo_customers().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let service = shared::http::into_service(app.router.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<axum::extract::Request>::into_make_service(service),
        )
        .await
    });
    let options = demo::Options {
        base_url: format!("http://{address}"),
        username: SUPER_ADMIN.into(),
        password: SUPER_ADMIN_PASSWORD.to_owned().into(),
    };
    let expected = app.count(GOLD_PLATINUM_VERIFIED, &[]).await;
    assert!(expected > 0);

    for run in 0..2 {
        let report = demo::run(&options).await.expect("the demo runs");
        assert_eq!(report.matched, expected, "run {run}");
        // Consent and the contact cap: the summary adds up.
        assert!(
            report.suppressed_by_consent > 0,
            "run {run}: the opt-outs are held back"
        );
        assert_eq!(report.suppressed_by_pressure, 0, "run {run}: under the cap");
        assert_eq!(
            report.matched,
            report.suppressed_by_consent
                + report.suppressed_by_pressure
                + report.released
                + report.control,
            "run {run}"
        );
        // The 10 % holdout and the results: the groups are the summary's, and the lift comes
        // with an interval around it (the demo's groups are small: the conversions drawn by
        // its model vary with the customers' random ids, so only their bounds are checked).
        assert!(report.control > 0, "run {run}: a control group");
        let results = &report.results;
        assert_eq!(
            results["treated"]["customers"], report.released,
            "run {run}"
        );
        assert_eq!(results["control"]["customers"], report.control, "run {run}");
        for group in ["treated", "control"] {
            let converted = results[group]["converted"].as_i64().unwrap_or(-1);
            assert!(
                (0..=results[group]["customers"].as_i64().unwrap_or(0)).contains(&converted),
                "{results}"
            );
        }
        // Every treated customer the model picks converted, whatever stage its delivery
        // reached (the demo once asked only for `pending`, `sent` and `failed` ones).
        let treated: Vec<String> = app
            .db()
            .await
            .query(
                "select customer_id::text from campaign_customers
                 where campaign_id = $1 and released_at is not null",
                &[&i32::try_from(report.campaign_id).expect("id")],
            )
            .await
            .expect("treated")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let modelled = treated.iter().filter(|c| demo::converts(c, true)).count();
        assert_eq!(
            results["treated"]["converted"], modelled,
            "run {run}: {results}"
        );
        let interval = &results["lift"]["interval"];
        assert!(
            interval[0].as_f64() < results["lift"]["absolute"].as_f64()
                && results["lift"]["absolute"].as_f64() < interval[1].as_f64(),
            "{results}"
        );
        assert_eq!(
            report.sent + report.failed + report.pending,
            report.released
        );
        assert_eq!(report.failed, report.released / 10, "every tenth fails");
        assert_eq!(report.pending, 0);
        let trail: Vec<(&str, &str)> = report
            .audit
            .iter()
            .map(|line| (line.action.as_str(), line.by.as_str()))
            .collect();
        assert_eq!(
            trail,
            [
                ("create", "cc_maker"),
                ("status_change", "cc_maker"),
                ("status_change", "cc_approver"),
                ("update", "cc_maker"),
                ("status_change", "cc_maker"),
                ("status_change", "cc_approver"),
            ]
        );
        // Version 2 is live, the campaign keeps version 1, and the change is the patch the
        // demo's edit makes: the fee replaced, one benefit added.
        assert_eq!(report.live_version, 2, "run {run}");
        assert_eq!(report.campaign_offer_version, 1, "run {run}");
        assert_eq!(
            report.version_diff,
            vec![
                "replace  /annual_fee  3999".to_owned(),
                "add      /benefits/3  \"2 free airport transfers a year\"".to_owned(),
            ],
            "run {run}"
        );
        assert!(report.audit[2].note.starts_with("submitted → approved"));
        assert!(report.steps.iter().any(|s| s.contains("refused (403)")));
        let rows = app
            .count(
                "select count(*) from campaign_customers where campaign_id = $1 \
                 and delivery_status in ('sent', 'delivered', 'opened', 'clicked')",
                &[&i32::try_from(report.campaign_id).expect("id")],
            )
            .await;
        assert_eq!(rows, report.sent);
        // The custom role at work: the operator (given the role by the tenant admin, once)
        // created the campaign.
        let by_operator = app
            .count(
                "select count(*) from campaigns where id = $1 and created_by = 'cc_operator'",
                &[&i32::try_from(report.campaign_id).expect("id")],
            )
            .await;
        assert_eq!(by_operator, 1, "run {run}");
        let grants = app
            .count(
                "select count(*) from tenant_access_audit_logs
                 where tenant_name = 'credit_card' and action = 'role_assigned'
                   and performed_by = 'cc_admin' and target_username = 'cc_operator'
                   and role = 'campaign_operator'",
                &[],
            )
            .await;
        assert_eq!(
            grants, 1,
            "run {run}: assigned once, a repeat changes nothing"
        );
        assert!(
            report
                .steps
                .iter()
                .any(|s| s.contains("custom role campaign_operator"))
        );
        let printed = report.to_string();
        assert!(printed.contains("customers matched"), "{printed}");
        assert!(printed.contains("Newcombe"), "{printed}");
        walkthrough_offer_is_accepted(&app, &report).await;
    }
}

/// The API guide's curl walkthrough (docs/api.md) runs after the demo too: its offer
/// (the first `"data"` body there) passes the demo tenant's offer schema (bank scale,
/// operating notes: it answered 422 on it).
async fn walkthrough_offer_is_accepted(app: &TestApp, report: &demo::Report) {
    let guide = include_str!("../../docs/api.md");
    let start = guide
        .find(r#"-d '{"data":"#)
        .expect("the walkthrough's offer")
        + 4;
    let end = start + guide[start..].find('\'').expect("the body's end");
    let body: serde_json::Value = serde_json::from_str(&guide[start..end]).expect("JSON body");
    let (maker, _, password) = report
        .users
        .iter()
        .find(|(_, role, _)| role == "create")
        .expect("the demo's maker");
    let token = app.login(maker, password).await;
    let created = app.post("/tenants/credit_card/offers", &token, body).await;
    assert_eq!(
        created.status,
        axum::http::StatusCode::CREATED,
        "{:?}",
        created.body
    );
}
