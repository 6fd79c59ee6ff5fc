//! The documentation against the tree: every relative link of the README, ARCHITECTURE.md,
//! CHANGELOG.md and `docs/` resolves (to a file, and to a heading where it names one), every
//! page of `docs/` is linked from the README, and the endpoint table of `docs/api.md` is the
//! one the OpenAPI document gives.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// The Markdown pages checked: the three at the root and every page of `docs/`.
fn pages() -> Vec<PathBuf> {
    let root = root();
    let mut pages: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "CHANGELOG.md"]
        .iter()
        .map(|name| root.join(name))
        .collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The targets of the inline links `[text](target)` of `text`, outside code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(close) = after.find(')') else { break };
            targets.push(after[..close].to_string());
            rest = &after[close..];
        }
    }
    targets
}

/// GitHub's anchor of a heading: lower case, spaces to hyphens, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| anchor(line.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_relative_link_of_the_docs_resolves() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("page");
        for target in link_targets(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (file, fragment) = match target.split_once('#') {
                Some((file, fragment)) => (file, Some(fragment)),
                None => (target.as_str(), None),
            };
            let resolved = if file.is_empty() {
                page.clone()
            } else {
                page.parent().expect("folder").join(file)
            };
            if !resolved.exists() {
                broken.push(format!("{}: {target} (no such file)", page.display()));
                continue;
            }
            if let Some(fragment) = fragment {
                let text = std::fs::read_to_string(&resolved).unwrap_or_default();
                if !anchors(&text).iter().any(|a| a == fragment) {
                    broken.push(format!("{}: {target} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_page_of_docs_is_linked_from_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let linked = link_targets(&readme);
    for page in pages().iter().skip(1) {
        let relative = page
            .strip_prefix(root())
            .expect("under the root")
            .to_string_lossy()
            .into_owned();
        assert!(
            linked.iter().any(|target| target == &relative),
            "README.md does not link {relative}"
        );
    }
}

#[test]
fn the_endpoint_table_is_the_openapi_documents() {
    let page = std::fs::read_to_string(root().join("docs/api.md")).expect("docs/api.md");
    let expected = offerctl_gateway::with_endpoint_table(&page).expect("the table's markers");
    assert!(
        page == expected,
        "docs/api.md's endpoint table differs from the OpenAPI document; regenerate it with \
         `cargo run -p offerctl -- openapi --output openapi.json --endpoint-table docs/api.md`"
    );
    // Every operation of the committed document has its row.
    let document: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("openapi.json")).expect("openapi.json"),
    )
    .expect("JSON");
    let operations: usize = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| {
            ["get", "post", "put", "patch", "delete"]
                .iter()
                .filter(|method| item.get(**method).is_some())
                .count()
        })
        .sum();
    let rows = offerctl_gateway::endpoint_table().lines().count() - 2;
    assert_eq!(rows, operations);
    assert!(rows > 0);
}

#[test]
fn the_readme_stays_a_front_page() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; move detail to docs/"
    );
    let first_section = readme.find("## ").expect("a section");
    assert!(
        readme[first_section..].starts_with("## Two commands"),
        "the two commands come first"
    );
}

/// The variables of the configuration table in `docs/operations.md` (the first column's
/// backticked names).
fn documented_variables() -> std::collections::BTreeSet<String> {
    let page = std::fs::read_to_string(root().join("docs/operations.md")).expect("page");
    let table = &page[page
        .find("## Configuration")
        .expect("a Configuration section")..];
    table
        .lines()
        .skip_while(|line| !line.starts_with("| variable"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .flat_map(|line| {
            let first = line.split('|').nth(1).unwrap_or_default();
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The variables `shared::config` reads: the upper-case string literals of its code (tests
/// excluded).
fn read_variables() -> std::collections::BTreeSet<String> {
    let mut variables = std::collections::BTreeSet::new();
    for file in rust_files(&root().join("shared/src/config")) {
        let source = std::fs::read_to_string(&file).expect("source");
        let code = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        variables.extend(
            code.split('"')
                .skip(1)
                .step_by(2)
                .filter(|literal| {
                    literal.len() > 2
                        && literal
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                })
                .map(str::to_owned),
        );
    }
    variables
}

#[test]
fn the_configuration_table_lists_exactly_the_variables_the_code_reads() {
    // Read by libraries (the AWS SDK, tracing's filter) or by the scripts, not by our code.
    let outside = [
        "AWS_REGION",
        "AWS_ENDPOINT_URL_SQS",
        "RUST_LOG",
        "SQS_TEST_ENDPOINT",
        "TEST_DATABASE_URL",
        "CARGO_TARGET_DIR",
        "PYTHON_TOOLS_VENV",
    ];
    let documented = documented_variables();
    let read = read_variables();
    let undocumented: Vec<_> = read.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "read by shared::config but not in docs/operations.md's table: {undocumented:?}"
    );
    let unread: Vec<_> = documented
        .difference(&read)
        .filter(|name| !outside.contains(&name.as_str()))
        .collect();
    assert!(
        unread.is_empty(),
        "in docs/operations.md's table but read nowhere in shared::config: {unread:?}"
    );
    // And nothing else reads the environment.
    for folder in ["functions", "shared/src", "bulk/src", "infra/offerctl/src"] {
        for file in rust_files(&root().join(folder)) {
            if file.starts_with(root().join("shared/src/config")) {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("source");
            assert!(
                !text.contains("env::var"),
                "{} reads the environment; read it in shared::config",
                file.display()
            );
        }
    }
}

fn rust_files(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).expect("folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}
