//! SOQL over the REST query resource: parent-to-child relationship subqueries (nested
//! `{totalSize, done, records}` or null) and aggregates (GROUP BY with COUNT,
//! COUNT_DISTINCT, SUM, AVG, MIN and MAX, answered as AggregateResult records keyed like
//! Salesforce: grouped field names, aliases, `exprN` over unaliased aggregates), with the
//! errors for unknown relationships and ungrouped or non-numeric fields.

mod emulator_support;

use emulator_support::Emu;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn query(emu: &Emu, soql: &str) -> (StatusCode, Value) {
    let r = emu
        .client
        .get(emu.url("/query"))
        .query(&[("q", soql)])
        .bearer_auth(&emu.token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn seed(emu: &Emu) {
    let rows = [
        ("Alpha", Some("Banking"), Some(100), Some(10)),
        ("Bravo", Some("Banking"), Some(300), Some(30)),
        ("Charlie", Some("Energy"), Some(50), None),
        ("Delta", None, None, Some(7)),
    ];
    for (name, industry, revenue, employees) in rows {
        let mut body = json!({"Name": name});
        if let Some(i) = industry {
            body["Industry"] = json!(i);
        }
        if let Some(r) = revenue {
            body["AnnualRevenue"] = json!(r);
        }
        if let Some(e) = employees {
            body["NumberOfEmployees"] = json!(e);
        }
        emu.insert("Account", body).await;
    }
}

#[tokio::test]
async fn group_by_with_every_aggregate_function() {
    let emu = Emu::start().await;
    seed(&emu).await;
    let (status, body) = query(
        &emu,
        "SELECT Industry, COUNT(Id), SUM(AnnualRevenue), AVG(NumberOfEmployees), MIN(Name), MAX(Name) \
         FROM Account GROUP BY Industry ORDER BY Industry NULLS LAST",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["totalSize"], 3, "{body}");
    assert_eq!(body["done"], true);
    let records = body["records"].as_array().unwrap();
    let banking = &records[0];
    assert_eq!(banking["attributes"], json!({"type": "AggregateResult"}));
    assert_eq!(banking["Industry"], "Banking");
    assert_eq!(banking["expr0"], 2);
    assert_eq!(banking["expr1"].as_f64(), Some(400.0), "{banking}");
    assert_eq!(banking["expr2"].as_f64(), Some(20.0), "{banking}");
    assert_eq!(banking["expr3"], "Alpha");
    assert_eq!(banking["expr4"], "Bravo");
    let keys: Vec<&str> = banking
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "attributes",
            "Industry",
            "expr0",
            "expr1",
            "expr2",
            "expr3",
            "expr4"
        ]
    );

    let energy = &records[1];
    assert_eq!(energy["Industry"], "Energy");
    assert_eq!(energy["expr2"], Value::Null, "AVG of only nulls is null");
    let none = &records[2];
    assert_eq!(none["Industry"], Value::Null);
    assert_eq!(none["expr0"], 1);
    assert_eq!(none["expr1"], Value::Null);
}

#[tokio::test]
async fn aliases_and_expr_numbering_without_group_by() {
    let emu = Emu::start().await;
    seed(&emu).await;
    let (status, body) = query(
        &emu,
        "SELECT COUNT(Id) n, COUNT_DISTINCT(Industry), MAX(AnnualRevenue) top FROM Account",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["totalSize"], 1);
    let row = &body["records"][0];
    assert_eq!(row["n"], 4);
    assert_eq!(row["expr0"], 2, "{row}");
    assert_eq!(row["top"].as_f64(), Some(300.0), "{row}");

    let (status, body) = query(
        &emu,
        "SELECT COUNT(Id), SUM(AnnualRevenue) FROM Account WHERE Name = 'nobody'",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["totalSize"], 1, "one row even when nothing matched");
    assert_eq!(body["records"][0]["expr0"], 0);
    assert_eq!(body["records"][0]["expr1"], Value::Null);

    let (_, body) = query(
        &emu,
        "SELECT Industry, COUNT(Id) FROM Account WHERE Name = 'nobody' GROUP BY Industry",
    )
    .await;
    assert_eq!(
        body["totalSize"], 0,
        "no groups when nothing matched: {body}"
    );
}

#[tokio::test]
async fn ungrouped_and_non_numeric_fields_are_malformed() {
    let emu = Emu::start().await;
    seed(&emu).await;
    for soql in [
        "SELECT Name, COUNT(Id) FROM Account GROUP BY Industry",
        "SELECT SUM(Name) FROM Account",
        "SELECT Industry, COUNT(Id) FROM Account GROUP BY Industry ORDER BY Name",
    ] {
        let (status, body) = query(&emu, soql).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{soql}: {body}");
        assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY", "{soql}: {body}");
    }
}

#[tokio::test]
async fn parent_to_child_subqueries_nest_results_or_null() {
    let emu = Emu::start().await;
    let acme = emu.insert("Account", json!({"Name": "Acme"})).await;
    emu.insert("Account", json!({"Name": "Lonely"})).await;
    for last in ["Zed", "Young", "Xu"] {
        emu.insert("Contact", json!({"LastName": last, "AccountId": acme}))
            .await;
    }
    let (status, body) = query(
        &emu,
        "SELECT Name, (SELECT LastName FROM Contacts WHERE LastName != 'Zed' ORDER BY LastName) \
         FROM Account ORDER BY Name",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["totalSize"], 2);
    let acme_row = &body["records"][0];
    assert_eq!(acme_row["Name"], "Acme");
    let contacts = &acme_row["Contacts"];
    assert_eq!(contacts["totalSize"], 2, "{contacts}");
    assert_eq!(contacts["done"], true);
    let names: Vec<&str> = contacts["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["LastName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Xu", "Young"]);
    assert_eq!(contacts["records"][0]["attributes"]["type"], "Contact");
    assert_eq!(
        body["records"][1]["Contacts"],
        Value::Null,
        "no children is null"
    );

    let (status, body) = query(
        &emu,
        "SELECT Id, (SELECT Id FROM Contacts LIMIT 1) FROM Account WHERE Name = 'Acme'",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"][0]["Contacts"]["totalSize"], 1, "{body}");
}

#[tokio::test]
async fn unknown_child_relationships_are_invalid_type() {
    let emu = Emu::start().await;
    let (status, body) = query(&emu, "SELECT Id, (SELECT Id FROM Nonsense) FROM Account").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body[0]["errorCode"], "INVALID_TYPE", "{body}");
    let (status, body) = query(
        &emu,
        "SELECT Id, (SELECT COUNT(Id) FROM Contacts) FROM Account",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY", "{body}");
}

#[tokio::test]
async fn bulk_query_refuses_relationship_subqueries() {
    let emu = Emu::start().await;
    let r = emu
        .post(
            "/jobs/query",
            &json!({"operation": "query", "query": "SELECT Id, (SELECT Id FROM Contacts) FROM Account"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
}
