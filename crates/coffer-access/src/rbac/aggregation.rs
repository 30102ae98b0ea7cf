//! ClusterRole aggregation (`reference/k8s-api.md` §9.3): an aggregated ClusterRole's rules are
//! the union of the rules of every ClusterRole its `aggregationRule` selects.
//!
//! Source: kubernetes `pkg/controller/clusterroleaggregation/clusterroleaggregation_controller.go`.
//! Per aggregated role and per selector in order, the matching ClusterRoles are taken sorted by
//! name (the role itself skipped) and their rules appended unless an equal rule is already
//! there. A role is updated only when that list differs from its rules; an invalid selector
//! leaves the role alone. One controller pass sees the roles as they are, so chains
//! (`admin` ← `edit` ← `view`) settle over several passes: [`aggregate_all`] runs them.

use coffer_api::k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaSelector;
use coffer_api::{LabelSelector, Operator, Requirement};

use super::rules::list;

/// One controller pass: for each aggregated ClusterRole whose rules differ from the union of
/// the matching roles' rules, its name and the new rules (in the controller's order).
pub fn aggregate(cluster_roles: &[ClusterRole]) -> Vec<(String, Vec<PolicyRule>)> {
    let mut updates = Vec::new();
    for role in cluster_roles {
        let Some(rule) = &role.aggregation_rule else {
            continue;
        };
        let name = role.metadata.name.as_deref().unwrap_or("");
        let Some(new_rules) =
            aggregated_rules(name, rule.cluster_role_selectors.as_deref(), cluster_roles)
        else {
            continue;
        };
        if !same_rule_lists(&new_rules, role.rules.as_deref().unwrap_or(&[])) {
            updates.push((name.to_owned(), new_rules));
        }
    }
    updates
}

/// Runs [`aggregate`] and writes its results back until nothing changes (at most one pass
/// per role plus one, which bounds selector cycles). Returns the names of the roles changed,
/// each once, in the order first changed.
pub fn aggregate_all(cluster_roles: &mut [ClusterRole]) -> Vec<String> {
    let mut changed: Vec<String> = Vec::new();
    for _ in 0..=cluster_roles.len() {
        let updates = aggregate(cluster_roles);
        if updates.is_empty() {
            break;
        }
        for (name, rules) in updates {
            if let Some(role) = cluster_roles
                .iter_mut()
                .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
            {
                role.rules = Some(rules);
            }
            if !changed.contains(&name) {
                changed.push(name);
            }
        }
    }
    changed
}

/// The union for one aggregated role; `None` when a selector is invalid.
fn aggregated_rules(
    own_name: &str,
    selectors: Option<&[MetaSelector]>,
    cluster_roles: &[ClusterRole],
) -> Option<Vec<PolicyRule>> {
    let mut new_rules: Vec<PolicyRule> = Vec::new();
    for selector in selectors.unwrap_or(&[]) {
        let selector = selector_from_meta(selector).ok()?;
        let mut matching: Vec<&ClusterRole> = cluster_roles
            .iter()
            .filter(|r| selector.matches(r.metadata.labels.as_ref().unwrap_or(&Default::default())))
            .collect();
        matching.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        for role in matching {
            if role.metadata.name.as_deref().unwrap_or("") == own_name {
                continue;
            }
            for rule in role.rules.iter().flatten() {
                if !new_rules.iter().any(|r| same_rule(r, rule)) {
                    new_rules.push(rule.clone());
                }
            }
        }
    }
    Some(new_rules)
}

/// apimachinery's `LabelSelectorAsSelector` for a structured selector: `matchLabels` become
/// equality requirements, `matchExpressions` keep their operator; the empty selector matches
/// everything. Errors name the problem as `NewRequirement` does.
pub(crate) fn selector_from_meta(selector: &MetaSelector) -> Result<LabelSelector, String> {
    let mut requirements = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        requirements.push(Requirement {
            key: key.clone(),
            operator: Operator::Equals,
            values: vec![value.clone()],
        });
    }
    for expr in selector.match_expressions.iter().flatten() {
        let mut values = expr.values.clone().unwrap_or_default();
        values.sort();
        values.dedup();
        let operator = match expr.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => return Err(format!("{other:?} is not a valid label selector operator")),
        };
        let needs_values = matches!(operator, Operator::In | Operator::NotIn);
        if needs_values && values.is_empty() {
            return Err("for 'in', 'notin' operators, values set can't be empty".to_owned());
        }
        if !needs_values && !values.is_empty() {
            return Err("values set must be empty for exists and does not exist".to_owned());
        }
        requirements.push(Requirement {
            key: expr.key.clone(),
            operator,
            values,
        });
    }
    requirements.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(LabelSelector { requirements })
}

/// apimachinery's semantic equality for rule lists (nil and empty slices are equal).
fn same_rule_lists(a: &[PolicyRule], b: &[PolicyRule]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_rule(x, y))
}

/// Semantic equality of two rules: every list equal, a missing list equal to an empty one.
pub(crate) fn same_rule(a: &PolicyRule, b: &PolicyRule) -> bool {
    a.verbs == b.verbs
        && list(&a.api_groups) == list(&b.api_groups)
        && list(&a.resources) == list(&b.resources)
        && list(&a.resource_names) == list(&b.resource_names)
        && list(&a.non_resource_urls) == list(&b.non_resource_urls)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use coffer_api::k8s_openapi::api::rbac::v1::AggregationRule;
    use coffer_api::k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        LabelSelectorRequirement, ObjectMeta,
    };

    use super::*;

    fn rule(verb: &str, resource: &str) -> PolicyRule {
        PolicyRule {
            verbs: vec![verb.into()],
            api_groups: Some(vec!["".into()]),
            resources: Some(vec![resource.into()]),
            ..PolicyRule::default()
        }
    }

    fn role(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> ClusterRole {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            rules: Some(rules),
            aggregation_rule: None,
        }
    }

    fn aggregated(
        name: &str,
        labels: &[(&str, &str)],
        selectors: Vec<MetaSelector>,
    ) -> ClusterRole {
        ClusterRole {
            aggregation_rule: Some(AggregationRule {
                cluster_role_selectors: Some(selectors),
            }),
            rules: None,
            ..role(name, labels, vec![])
        }
    }

    fn match_label(k: &str, v: &str) -> MetaSelector {
        MetaSelector {
            match_labels: Some([(k.to_string(), v.to_string())].into()),
            match_expressions: None,
        }
    }

    #[test]
    fn union_sorted_by_name_without_duplicates() {
        let roles = vec![
            aggregated("agg", &[], vec![match_label("team", "a")]),
            role(
                "z-role",
                &[("team", "a")],
                vec![rule("get", "secrets"), rule("list", "secrets")],
            ),
            role(
                "a-role",
                &[("team", "a")],
                vec![rule("get", "configmaps"), rule("get", "secrets")],
            ),
            role("other", &[("team", "b")], vec![rule("delete", "secrets")]),
        ];
        let updates = aggregate(&roles);
        assert_eq!(
            updates,
            vec![(
                "agg".to_owned(),
                vec![
                    rule("get", "configmaps"),
                    rule("get", "secrets"),
                    rule("list", "secrets")
                ]
            )]
        );
    }

    #[test]
    fn unchanged_roles_and_bad_selectors_yield_nothing() {
        let mut agg = aggregated("agg", &[], vec![match_label("team", "a")]);
        agg.rules = Some(vec![rule("get", "secrets")]);
        let roles = vec![
            agg,
            role("a", &[("team", "a")], vec![rule("get", "secrets")]),
        ];
        assert!(aggregate(&roles).is_empty());
        // Nothing selected and no rules: nil and empty are equal.
        let lonely = vec![aggregated("agg", &[], vec![match_label("team", "none")])];
        assert!(aggregate(&lonely).is_empty());
        let bad = MetaSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "team".into(),
                operator: "In".into(),
                values: None,
            }]),
        };
        let roles = vec![
            aggregated("agg", &[], vec![bad]),
            role("a", &[("team", "a")], vec![rule("get", "x")]),
        ];
        assert!(aggregate(&roles).is_empty());
    }

    #[test]
    fn expressions_and_self_exclusion() {
        let expr = MetaSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["secret".into()]),
            }]),
        };
        // The aggregated role matches its own selector (no tier label) but is skipped.
        let roles = vec![
            aggregated("agg", &[], vec![expr]),
            role("open", &[("tier", "open")], vec![rule("get", "configmaps")]),
            role(
                "hidden",
                &[("tier", "secret")],
                vec![rule("get", "secrets")],
            ),
        ];
        assert_eq!(
            aggregate(&roles),
            vec![("agg".to_owned(), vec![rule("get", "configmaps")])]
        );
    }

    #[test]
    fn chains_settle_with_aggregate_all() {
        let mut roles = vec![
            aggregated("admin", &[], vec![match_label("to-admin", "true")]),
            aggregated(
                "edit",
                &[("to-admin", "true")],
                vec![match_label("to-edit", "true")],
            ),
            aggregated(
                "view",
                &[("to-edit", "true")],
                vec![match_label("to-view", "true")],
            ),
            role(
                "v-src",
                &[("to-view", "true")],
                vec![rule("get", "configmaps")],
            ),
            role(
                "e-src",
                &[("to-edit", "true")],
                vec![rule("create", "secrets")],
            ),
        ];
        let changed = aggregate_all(&mut roles);
        assert_eq!(changed, ["edit", "view", "admin"]);
        let admin = roles[0].rules.clone().unwrap_or_default();
        assert_eq!(
            admin,
            vec![rule("create", "secrets"), rule("get", "configmaps")]
        );
        assert!(aggregate(&roles).is_empty());
    }
}
