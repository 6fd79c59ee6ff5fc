//! `template.yaml` (AWS SAM) against the code: every route a router serves has a matching
//! HTTP API event on the function that serves it, and nothing else does; the queue, its
//! dead-letter queue and the processor's event source follow the rules of the deploy issue.
//! (`cfn-lint` and `sam validate --lint` run in CI; they do not check these.)

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

fn template() -> Value {
    let file = format!("{}/../template.yaml", env!("CARGO_MANIFEST_DIR"));
    serde_norway::from_str(&std::fs::read_to_string(file).expect("template.yaml")).expect("YAML")
}

fn resources(template: &Value) -> &serde_norway::Mapping {
    template["Resources"].as_mapping().expect("Resources")
}

/// `!GetAtt X.Y` / `!Ref X` as text, whatever the YAML form.
fn intrinsic(value: &Value) -> String {
    match value {
        Value::Tagged(tagged) => format!("{} {}", tagged.tag, intrinsic(&tagged.value)),
        Value::String(s) => s.clone(),
        Value::Sequence(items) => items.iter().map(intrinsic).collect::<Vec<_>>().join(" "),
        other => format!("{other:?}"),
    }
}

/// The serverless functions: logical id → properties.
fn functions(template: &Value) -> BTreeMap<String, Value> {
    resources(template)
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, r)| (id.as_str().expect("id").to_owned(), r.clone()))
        .collect()
}

type RouteSet = BTreeSet<(String, String)>;

/// The routes of a function's OpenAPI document: those its router serves (both come from its
/// handlers' annotations).
fn declared(doc: &utoipa::openapi::OpenApi) -> RouteSet {
    shared::http::routes_of(doc)
        .into_iter()
        .map(|(method, path)| (method.to_string(), path))
        .collect()
}

#[test]
fn every_served_route_has_an_api_event_on_its_function_and_vice_versa() {
    let template = template();
    let served: BTreeMap<&str, RouteSet> = BTreeMap::from([
        ("functions/auth-api", declared(&auth_api::openapi())),
        ("functions/admin-api", declared(&admin_api::openapi())),
        ("functions/offers-api", declared(&offers_api::openapi())),
        (
            "functions/campaigns-api",
            declared(&campaigns_api::openapi()),
        ),
        (
            "functions/customers-api",
            declared(&customers_api::openapi()),
        ),
        (
            "functions/delivery-webhook",
            declared(&delivery_webhook::openapi()),
        ),
        ("functions/campaign-processor", RouteSet::new()),
        ("functions/outbox-relay", RouteSet::new()),
        ("functions/customer-import", RouteSet::new()),
        ("functions/housekeeping", RouteSet::new()),
        ("functions/migrate", RouteSet::new()),
    ]);
    let mut in_template: BTreeMap<String, RouteSet> = BTreeMap::new();
    for (id, function) in functions(&template) {
        let properties = &function["Properties"];
        let code_uri = properties["CodeUri"].as_str().expect("CodeUri").to_owned();
        let events = properties["Events"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        let routes = in_template.entry(code_uri.clone()).or_default();
        for (name, event) in events {
            if event["Type"] != "HttpApi" {
                continue;
            }
            let method = event["Properties"]["Method"].as_str().expect("Method");
            let path = event["Properties"]["Path"].as_str().expect("Path");
            assert_eq!(
                intrinsic(&event["Properties"]["ApiId"]),
                "!Ref HttpApi",
                "{id}.{name:?} is on the one HTTP API"
            );
            assert!(
                routes.insert((method.to_owned(), path.to_owned())),
                "{method} {path} twice on {id}"
            );
        }
    }
    let functions_in_template: BTreeSet<&str> = in_template.keys().map(String::as_str).collect();
    let functions_in_code: BTreeSet<&str> = served.keys().copied().collect();
    assert_eq!(
        functions_in_template, functions_in_code,
        "one template function per crate"
    );
    for (code_uri, routes) in &served {
        let missing: Vec<_> = routes.difference(&in_template[*code_uri]).collect();
        let extra: Vec<_> = in_template[*code_uri].difference(routes).collect();
        assert!(
            missing.is_empty(),
            "{code_uri} serves routes missing in AWS: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "{code_uri} has API events it does not serve: {extra:?}"
        );
    }
    // No route is served by two functions.
    let all: Vec<_> = served.values().flatten().collect();
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(all.len(), unique.len());
}

#[test]
fn functions_are_cargo_lambda_builds_for_arm64_on_al2023() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");
    assert_eq!(globals["Handler"], "bootstrap");
    assert!(
        intrinsic(&globals["Environment"]["Variables"]["DATABASE_URL"])
            .contains("resolve:secretsmanager")
    );
    // Migrations run as the tables' owner; every other function as the API's role.
    let migrate_url = intrinsic(
        &template["Resources"]["MigrateFunction"]["Properties"]["Environment"]["Variables"]["DATABASE_URL"],
    );
    assert!(
        migrate_url.contains("OwnerDatabaseUrlSecretArn"),
        "{migrate_url}"
    );
    for (id, function) in functions(&template) {
        assert_eq!(
            function["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{id}"
        );
        let code_uri = function["Properties"]["CodeUri"].as_str().expect("CodeUri");
        let manifest = format!("{}/../{code_uri}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
        assert!(std::path::Path::new(&manifest).exists(), "{id}: {manifest}");
    }
}

#[test]
fn secrets_come_from_secrets_manager_never_from_defaults() {
    let template = template();
    for (name, parameter) in template["Parameters"].as_mapping().expect("Parameters") {
        let name = name.as_str().expect("name");
        if name.to_ascii_lowercase().contains("secret") {
            // An optional secret defaults to nothing (''), never to a value.
            assert!(
                parameter
                    .get("Default")
                    .is_none_or(|d| d.as_str() == Some("")),
                "{name} has a default"
            );
            assert!(
                parameter["AllowedPattern"]
                    .as_str()
                    .is_some_and(|p| p.contains("secretsmanager")),
                "{name} must be a Secrets Manager ARN"
            );
        }
    }
    let jwt_users: BTreeSet<String> = functions(&template)
        .into_iter()
        .filter(|(_, f)| !f["Properties"]["Environment"]["Variables"]["JWT_SECRET"].is_null())
        .map(|(id, _)| id)
        .collect();
    for id in [
        "DeliveryWebhookFunction",
        "CampaignProcessorFunction",
        "MigrateFunction",
    ] {
        assert!(!jwt_users.contains(id), "{id} has no use for the JWT key");
    }
}

#[test]
fn the_queue_has_a_dead_letter_queue_and_the_processor_reports_batch_item_failures() {
    let template = template();
    let resources = resources(&template);
    let queue = &resources["CampaignQueue"]["Properties"];
    let redrive = &queue["RedrivePolicy"];
    assert_eq!(redrive["maxReceiveCount"].as_u64(), Some(5));
    assert_eq!(
        intrinsic(&redrive["deadLetterTargetArn"]),
        "!GetAtt CampaignDeadLetterQueue.Arn"
    );
    assert_eq!(
        resources["CampaignDeadLetterQueue"]["Type"],
        "AWS::SQS::Queue"
    );

    let processor = &resources["CampaignProcessorFunction"]["Properties"];
    let timeout = processor["Timeout"].as_u64().expect("processor timeout");
    let visibility = queue["VisibilityTimeout"]
        .as_u64()
        .expect("visibility timeout");
    assert!(
        visibility >= 6 * timeout,
        "visibility {visibility} < 6 x {timeout}"
    );
    let events = processor["Events"].as_mapping().expect("events");
    let sqs: Vec<&Value> = events.values().filter(|e| e["Type"] == "SQS").collect();
    assert_eq!(sqs.len(), 1);
    let source = &sqs[0]["Properties"];
    assert_eq!(intrinsic(&source["Queue"]), "!GetAtt CampaignQueue.Arn");
    let response_types: Vec<&str> = source["FunctionResponseTypes"]
        .as_sequence()
        .expect("FunctionResponseTypes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(response_types, ["ReportBatchItemFailures"]);
    let batch = source["BatchSize"].as_u64().expect("BatchSize");
    assert!((1..=10).contains(&batch));

    let alarm = resources
        .values()
        .find(|r| {
            r["Type"] == "AWS::CloudWatch::Alarm" && r["Properties"]["Namespace"] == "AWS/SQS"
        })
        .expect("a dead-letter queue alarm");
    assert_eq!(
        alarm["Properties"]["MetricName"],
        "ApproximateNumberOfMessagesVisible"
    );
    assert_eq!(
        intrinsic(&alarm["Properties"]["Dimensions"][0]["Value"]),
        "!GetAtt CampaignDeadLetterQueue.QueueName"
    );
}

#[test]
fn only_the_functions_that_enqueue_may_send_and_only_the_processor_reads() {
    let template = template();
    let mut senders = BTreeSet::new();
    let mut pollers = BTreeSet::new();
    for (id, function) in functions(&template) {
        let policies = function["Properties"]["Policies"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        for policy in policies {
            let policy = policy.as_mapping().expect("a SAM policy template");
            if policy.contains_key("Statement") {
                // Inline statements: the data bucket's functions only (see the S3 test).
                assert!(
                    [
                        "CustomerImportFunction",
                        "HousekeepingFunction",
                        "CampaignProcessorFunction"
                    ]
                    .contains(&id.as_str()),
                    "{id}: inline policy statements"
                );
                continue;
            }
            for (name, argument) in policy {
                let queue = intrinsic(&argument["QueueName"]);
                assert_eq!(
                    queue, "!GetAtt CampaignQueue.QueueName",
                    "{id}: scoped to the campaign queue"
                );
                match name.as_str().expect("policy name") {
                    "SQSSendMessagePolicy" => senders.insert(id.clone()),
                    "SQSPollerPolicy" => pollers.insert(id.clone()),
                    other => panic!("{id}: unexpected policy {other}"),
                };
            }
        }
    }
    assert_eq!(
        senders,
        BTreeSet::from([
            "CampaignProcessorFunction".to_owned(),
            "CampaignsApiFunction".to_owned(),
            "OutboxRelayFunction".to_owned(),
        ])
    );
    assert_eq!(
        pollers,
        BTreeSet::from(["CampaignProcessorFunction".to_owned()])
    );
    let outputs = template["Outputs"].as_mapping().expect("Outputs");
    for output in ["ApiUrl", "CampaignQueueUrl", "CampaignDeadLetterQueueUrl"] {
        assert!(outputs.contains_key(output), "output {output}");
    }
}

#[test]
fn the_relay_runs_on_a_schedule_and_alarms_watch_its_metrics() {
    let template = template();
    let resources = resources(&template);
    let relay = &resources["OutboxRelayFunction"]["Properties"];
    let events: Vec<&Value> = relay["Events"]
        .as_mapping()
        .expect("events")
        .values()
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["Type"], "Schedule");
    assert_eq!(events[0]["Properties"]["Schedule"], "rate(1 minute)");
    let variables = &relay["Environment"]["Variables"];
    for name in [
        "CAMPAIGN_QUEUE_URL",
        "CAMPAIGN_STALE_AFTER_SECONDS",
        "CAMPAIGN_MAX_ATTEMPTS",
    ] {
        assert!(!variables[name].is_null(), "relay variable {name}");
    }
    // Stale jobs are re-driven only well after the processor's own timeout.
    let processor_timeout = resources["CampaignProcessorFunction"]["Properties"]["Timeout"]
        .as_u64()
        .expect("timeout");
    let stale_min = template["Parameters"]["CampaignStaleAfterSeconds"]["MinValue"]
        .as_u64()
        .expect("MinValue");
    assert!(stale_min >= 2 * processor_timeout);
    // An alarm on each metric the processor and relay emit for stuck or failed work, with
    // the namespace and dimension the EMF records carry.
    let alarmed: BTreeSet<String> = resources
        .values()
        .filter(|r| {
            r["Type"] == "AWS::CloudWatch::Alarm"
                && r["Properties"]["Namespace"] == shared::metrics::NAMESPACE
        })
        .inspect(|r| {
            let dimension = &r["Properties"]["Dimensions"][0];
            assert_eq!(dimension["Name"], "Service");
            assert_eq!(dimension["Value"], shared::metrics::SERVICE);
        })
        .map(|r| {
            r["Properties"]["MetricName"]
                .as_str()
                .expect("MetricName")
                .to_owned()
        })
        .collect();
    assert_eq!(
        alarmed,
        BTreeSet::from([
            shared::metrics::ARCHIVES_UNVERIFIED.to_owned(),
            shared::metrics::IMPORTS_FAILED.to_owned(),
            shared::metrics::IMPORTS_REFUSED.to_owned(),
            shared::metrics::CAMPAIGN_STARTS_FAILED.to_owned(),
            shared::metrics::JOBS_FAILED.to_owned(),
            shared::metrics::RANGES_REDRIVEN.to_owned()
        ])
    );
}

#[test]
fn the_data_bucket_is_private_and_each_function_reaches_only_its_own_prefixes() {
    let template = template();
    let resources = resources(&template);
    let bucket = &resources["DataBucket"]["Properties"];
    let block = &bucket["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[setting], true, "{setting}");
    }
    assert!(
        bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
            ["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
            .is_string()
    );
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
    let statements = |function: &str| -> Vec<(Vec<String>, String)> {
        resources[function]["Properties"]["Policies"]
            .as_sequence()
            .expect("policies")
            .iter()
            .find_map(|p| p["Statement"].as_sequence())
            .expect("statements")
            .iter()
            .map(|s| {
                assert_eq!(s["Effect"], "Allow");
                let actions = s["Action"]
                    .as_sequence()
                    .expect("actions")
                    .iter()
                    .map(|a| a.as_str().expect("action").to_owned())
                    .collect();
                (actions, intrinsic(&s["Resource"]))
            })
            .collect()
    };
    let object =
        |prefix: &str| format!("!Sub arn:${{AWS::Partition}}:s3:::${{DataBucketName}}/{prefix}/*");
    assert_eq!(
        statements("CustomerImportFunction"),
        [
            (
                vec!["s3:GetObject".to_owned(), "s3:GetObjectVersion".to_owned()],
                object("imports")
            ),
            (
                vec!["s3:GetObject".to_owned(), "s3:GetObjectVersion".to_owned()],
                object("conversions")
            ),
            (vec!["s3:PutObject".to_owned()], object("results")),
            (
                vec![
                    "s3:PutObject".to_owned(),
                    "s3:AbortMultipartUpload".to_owned()
                ],
                object("import-parts")
            ),
        ]
    );
    // The steps of files imported in parts: read the file or its part objects, write the
    // result, delete the part objects.
    assert_eq!(
        statements("CampaignProcessorFunction"),
        [
            (
                vec!["s3:GetObject".to_owned(), "s3:GetObjectVersion".to_owned()],
                object("imports")
            ),
            (
                vec!["s3:GetObject".to_owned(), "s3:GetObjectVersion".to_owned()],
                object("conversions")
            ),
            (vec!["s3:GetObject".to_owned()], object("import-parts")),
            (vec!["s3:PutObject".to_owned()], object("results")),
            (vec!["s3:DeleteObject".to_owned()], object("import-parts")),
        ]
    );
    assert_eq!(
        statements("HousekeepingFunction"),
        [(
            vec![
                "s3:PutObject".to_owned(),
                "s3:GetObject".to_owned(),
                "s3:AbortMultipartUpload".to_owned()
            ],
            object("archive")
        )]
    );
    // The import's triggers are the imports/ and conversions/ prefixes only: its own
    // results never trigger it.
    let events = &resources["CustomerImportFunction"]["Properties"]["Events"];
    assert_eq!(events.as_mapping().map(serde_norway::Mapping::len), Some(2));
    for (name, prefix) in [
        ("CustomerFiles", bulk::import::IMPORTS_PREFIX),
        ("ConversionFiles", bulk::import::CONVERSIONS_PREFIX),
    ] {
        let trigger = &events[name];
        assert_eq!(trigger["Type"], "S3");
        assert_eq!(
            trigger["Properties"]["Filter"]["S3Key"]["Rules"][0]["Value"],
            prefix
        );
    }
}

#[test]
fn an_s3_gateway_endpoint_is_added_on_the_route_tables_given_and_only_then() {
    // Bank scale, operating notes: functions in the VPC reached the bucket only through a
    // NAT; given the subnets' route tables, the stack adds the gateway endpoint.
    let template = template();
    let endpoint = &resources(&template)["DataBucketGatewayEndpoint"];
    assert_eq!(endpoint["Type"], "AWS::EC2::VPCEndpoint");
    assert_eq!(endpoint["Condition"], "HasS3GatewayRouteTables");
    let properties = &endpoint["Properties"];
    assert_eq!(properties["VpcEndpointType"], "Gateway");
    assert_eq!(
        intrinsic(&properties["ServiceName"]),
        "!Sub com.amazonaws.${AWS::Region}.s3"
    );
    assert_eq!(
        intrinsic(&properties["RouteTableIds"]),
        "!Ref S3GatewayRouteTableIds"
    );
    assert_eq!(intrinsic(&properties["VpcId"]), "!Ref VpcId");
    let parameters = &template["Parameters"];
    assert_eq!(parameters["S3GatewayRouteTableIds"]["Default"], "");
    assert_eq!(parameters["VpcId"]["Default"], "");
    assert!(
        intrinsic(&template["Conditions"]["HasS3GatewayRouteTables"])
            .contains("S3GatewayRouteTableIds"),
        "the endpoint exists only when route tables are given"
    );
    assert!(template["Rules"]["S3GatewayNeedsVpc"]["Assertions"].is_sequence());
}
