//! Unit tests of the grammar: accepted shapes, AST contents and syntax errors.

use super::ast::{
    Cond, FieldsSet, LiteralValue, Op, Operand, RelativeShape, RelativeUnit, SelectItem,
};
use super::parse;
use super::parser::MAX_DEPTH;

/// The reason line of an error message (after the position prefix).
fn reason(soql: &str) -> String {
    let e = parse(soql).expect_err("should fail");
    e.message.rsplit('\n').next().unwrap_or_default().to_owned()
}

/// The WHERE clause of `soql`.
fn filter(soql: &str) -> Cond {
    parse(soql).expect("parses").filter.expect("has WHERE")
}

#[test]
fn parses_every_clause() {
    let q = parse(
        "select Id, Account.Owner.Name from Contact where Name = 'x' \
         order by Name desc nulls last, Id limit 10 offset 5 for view",
    )
    .unwrap();
    assert_eq!(q.select.len(), 2);
    assert_eq!(q.object_name(), "Contact");
    assert_eq!(q.order_by.len(), 2);
    assert!(q.order_by[0].descending && !q.order_by[0].nulls_first);
    assert!(!q.order_by[1].descending && q.order_by[1].nulls_first);
    assert_eq!((q.limit, q.offset), (Some(10), Some(5)));
    let SelectItem::Field(p) = &q.select[1] else {
        panic!()
    };
    assert_eq!(p.parts.len(), 3);
}

#[test]
fn parses_count_and_fields() {
    assert!(parse("SELECT COUNT() FROM Account").unwrap().is_count());
    let q = parse("SELECT COUNT(Id) n FROM Account").unwrap();
    assert!(matches!(&q.select[0], SelectItem::CountField(_, Some(a)) if a.text == "n"));
    let q = parse("SELECT FIELDS(STANDARD) FROM Account").unwrap();
    assert!(matches!(
        q.select[0],
        SelectItem::Fields(FieldsSet::Standard, _)
    ));
    assert!(parse("SELECT FIELDS(ALL) FROM Account LIMIT 200").is_ok());
    assert_eq!(
        reason("SELECT FIELDS(ALL) FROM Account"),
        "The SOQL FIELDS function must have a LIMIT of at most 200"
    );
}

#[test]
fn parses_literals() {
    let cases = [
        ("x = null", LiteralValue::Null),
        ("x = TRUE", LiteralValue::Bool(true)),
        ("x = false", LiteralValue::Bool(false)),
        ("x = 'a\\'b'", LiteralValue::Str("a\\'b".into())),
        ("x = -1.5", LiteralValue::Number("-1.5".into())),
    ];
    for (cond, want) in cases {
        let Cond::Compare(_, Op::Eq, Operand::Value(lit)) =
            filter(&format!("SELECT Id FROM A WHERE {cond}"))
        else {
            panic!("{cond}")
        };
        assert_eq!(lit.value, want, "{cond}");
    }
    let Cond::Compare(_, _, Operand::Value(lit)) = filter("SELECT Id FROM A WHERE d = 2024-02-29")
    else {
        panic!()
    };
    assert!(matches!(lit.value, LiteralValue::Date(_)));
    let Cond::Compare(_, _, Operand::Value(lit)) =
        filter("SELECT Id FROM A WHERE d >= 2024-01-01T00:00:00.000+05:30")
    else {
        panic!()
    };
    let LiteralValue::DateTime(dt) = lit.value else {
        panic!()
    };
    assert_eq!(dt.to_rfc3339(), "2023-12-31T18:30:00+00:00");
}

#[test]
fn parses_relative_dates() {
    let rel = |lit: &str| {
        let Cond::Compare(_, _, Operand::Value(l)) =
            filter(&format!("SELECT Id FROM A WHERE d = {lit}"))
        else {
            panic!()
        };
        let LiteralValue::Relative(r) = l.value else {
            panic!("{lit}")
        };
        (r.unit, r.shape, r.n)
    };
    assert_eq!(rel("TODAY"), (RelativeUnit::Day, RelativeShape::This, 1));
    assert_eq!(
        rel("yesterday"),
        (RelativeUnit::Day, RelativeShape::Last, 1)
    );
    assert_eq!(
        rel("LAST_90_DAYS"),
        (RelativeUnit::Day, RelativeShape::LastDaysWithToday, 90)
    );
    assert_eq!(
        rel("LAST_N_DAYS:7"),
        (RelativeUnit::Day, RelativeShape::LastDaysWithToday, 7)
    );
    assert_eq!(
        rel("NEXT_N_WEEKS:2"),
        (RelativeUnit::Week, RelativeShape::Next, 2)
    );
    assert_eq!(
        rel("LAST_N_MONTHS:3"),
        (RelativeUnit::Month, RelativeShape::Last, 3)
    );
    assert_eq!(
        rel("THIS_QUARTER"),
        (RelativeUnit::Quarter, RelativeShape::This, 1)
    );
    assert_eq!(
        rel("NEXT_FISCAL_YEAR"),
        (RelativeUnit::Year, RelativeShape::Next, 1)
    );
    assert_eq!(
        rel("N_YEARS_AGO:2"),
        (RelativeUnit::Year, RelativeShape::Ago, 2)
    );
    assert_eq!(
        reason("SELECT Id FROM A WHERE d = LAST_N_DAYS"),
        "unexpected token: '<EOF>'"
    );
    assert_eq!(
        reason("SELECT Id FROM A WHERE d = SOMEDAY"),
        "unexpected token: 'SOMEDAY'"
    );
}

#[test]
fn parses_list_operators_and_subqueries() {
    let c = filter(
        "SELECT Id FROM A WHERE x NOT IN ('a','b') AND m INCLUDES ('a;b','c') AND m EXCLUDES ('d')",
    );
    let Cond::And(parts) = c else { panic!() };
    assert!(matches!(&parts[0], Cond::Compare(_, Op::NotIn, Operand::List(l)) if l.len() == 2));
    assert!(matches!(&parts[1], Cond::Compare(_, Op::Includes, _)));
    assert!(matches!(&parts[2], Cond::Compare(_, Op::Excludes, _)));
    let c = filter(
        "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE Name LIKE 'a%')",
    );
    assert!(matches!(c, Cond::Compare(_, Op::In, Operand::Subquery(_))));
}

#[test]
fn nesting_and_not() {
    let c = filter("SELECT Id FROM A WHERE NOT (a = 1 OR (b = 2 AND NOT c = 3))");
    let Cond::Not(inner) = c else { panic!() };
    assert!(matches!(*inner, Cond::Or(_)));
    assert!(parse("SELECT Id FROM A WHERE a = 1 AND b = 2 AND c = 3").is_ok());
}

#[test]
fn mixing_and_or_needs_parentheses() {
    assert_eq!(
        reason("SELECT Id FROM A WHERE a = 1 AND b = 2 OR c = 3"),
        "unexpected token: 'OR'"
    );
    assert!(parse("SELECT Id FROM A WHERE (a = 1 AND b = 2) OR c = 3").is_ok());
}

#[test]
fn reports_unexpected_tokens_with_position() {
    let e = parse("SELECT Id FRM Account").unwrap_err();
    assert_eq!(e.code, "MALFORMED_QUERY");
    assert_eq!(
        e.message,
        "\nSELECT Id FRM Account\n          ^\nERROR at Row:1:Column:11\nunexpected token: 'FRM'"
    );
    assert_eq!(reason("SELECT Id FROM"), "unexpected token: '<EOF>'");
    assert_eq!(reason("SELECT FROM Account"), "unexpected token: 'FROM'");
    assert_eq!(
        reason("SELECT Id, FROM Account"),
        "unexpected token: 'FROM'"
    );
    assert_eq!(
        reason("SELECT Id FROM Account WHERE"),
        "unexpected token: '<EOF>'"
    );
    assert_eq!(
        reason("SELECT Id FROM Account LIMIT x"),
        "unexpected token: 'x'"
    );
    assert_eq!(
        reason("SELECT Id FROM Account LIMIT -1"),
        "unexpected token: '-1'"
    );
    assert_eq!(
        reason("SELECT Id FROM Account ORDER BY"),
        "unexpected token: '<EOF>'"
    );
    assert_eq!(
        reason("SELECT Industry FROM Account GROUP BY Industry HAVING COUNT(Id) > 1"),
        "unexpected token: 'HAVING'"
    );
    assert_eq!(
        reason("SELECT Id FROM Account WHERE Name = 'x' extra"),
        "unexpected token: 'extra'"
    );
    assert_eq!(
        reason("SELECT Id FROM Account WHERE (Name = 'x'"),
        "unexpected token: '<EOF>'"
    );
    assert_eq!(
        reason("SELECT Id FROM Account WHERE Name NOT LIKE 'x'"),
        "unexpected token: 'LIKE'"
    );
    assert_eq!(reason(""), "unexpected token: '<EOF>'");
    let e = parse("SELECT Id\nFROM Account\nWHERE Name == 'x'").unwrap_err();
    assert!(
        e.message.contains(
            "\nWHERE Name == 'x'\n            ^\nERROR at Row:3:Column:13\nunexpected token: '='"
        ),
        "{}",
        e.message
    );
}

#[test]
fn reports_lexical_errors() {
    assert_eq!(
        reason("SELECT Id FROM Account WHERE Name = 'open"),
        "line 1:37 mismatched character '<EOF>' expecting '''"
    );
    assert_eq!(
        reason("SELECT Id FROM Account WHERE Name # 'x'"),
        "line 1:35 no viable alternative at character '#'"
    );
    assert_eq!(
        reason("SELECT Id FROM A WHERE CreatedDate > 2016-07-31T04:17:54"),
        "unexpected token: 'T04'"
    );
    assert_eq!(
        reason(r"SELECT Id FROM A WHERE x = 'a\qb'"),
        r"unexpected token: ''a\qb''"
    );
}

#[test]
fn offset_is_capped() {
    assert!(parse("SELECT Id FROM A LIMIT 5 OFFSET 2000").is_ok());
    let e = parse("SELECT Id FROM A OFFSET 2001").unwrap_err();
    assert_eq!(e.code, "NUMBER_OUTSIDE_VALID_RANGE");
    assert_eq!(e.message, "Maximum SOQL offset allowed is 2000");
}

#[test]
fn tolerates_trailers() {
    for t in [
        "FOR VIEW",
        "FOR REFERENCE",
        "for update",
        "ALL ROWS",
        "ALL ROWS FOR VIEW",
    ] {
        assert!(
            parse(&format!("SELECT Id FROM A LIMIT 1 {t}")).is_ok(),
            "{t}"
        );
    }
    assert!(parse("SELECT Id FROM A FOR").is_err());
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = |n: usize| {
        format!(
            "SELECT Id FROM A WHERE {}x = 1{}",
            "(".repeat(n),
            ")".repeat(n)
        )
    };
    assert!(parse(&deep(MAX_DEPTH)).is_ok());
    let e = parse(&deep(MAX_DEPTH + 1)).unwrap_err();
    assert!(e
        .message
        .ends_with(&format!("Query nesting is deeper than {MAX_DEPTH} levels")));
    assert!(parse(&deep(100_000)).is_err());
    let nots = format!("SELECT Id FROM A WHERE {}x = 1", "NOT ".repeat(100_000));
    assert!(parse(&nots).is_err());
    let subs = format!(
        "SELECT Id FROM A WHERE {}",
        "Id IN (SELECT Id FROM A WHERE ".repeat(10_000)
    );
    assert!(parse(&subs).is_err());
}
