use super::*;
use crate::engine::SECOND;

fn dep(name: &str, cache: bool, queue: bool) -> DependencySpec {
    let config = DependencyConfig::default();
    DependencySpec {
        name: name.to_owned(),
        engine: DependencyEngine {
            cache: cache.then(CacheConfig::default),
            queue: queue.then(QueueConfig::default),
            ..DependencyEngine::from_config(&config)
        },
        sim: seed_sim_dependency(),
    }
}

fn call(dependency: &str, op: CallOp, leaf: LeafSpec) -> StepSpec {
    StepSpec::Call {
        call: dependency.to_owned(),
        op,
        key: None,
        leaf,
    }
}

fn fallback(list: Vec<FallbackSpec>, optional: bool) -> LeafSpec {
    LeafSpec {
        optional,
        feature: None,
        fallback: list,
        max_attempts: None,
        fallback_cpu: 0,
    }
}

/// The design sketch's shop: payments (queue), inventory (cache), recommendations.
fn shop() -> ServiceSpec {
    ServiceSpec {
        name: "shop".to_owned(),
        dependencies: vec![
            dep("payments", false, true),
            dep("inventory", true, false),
            dep("recommendations", false, false),
        ],
        key_spaces: vec![
            KeySpace {
                name: "sku".to_owned(),
                keys: Keys::Zipf { n: 50_000, s: 1.1 },
                records: Default::default(),
            },
            KeySpace {
                name: "order".to_owned(),
                keys: Keys::Uniform { n: 1_000_000 },
                records: Default::default(),
            },
        ],
        admission: None,
        compute: None,
        features: vec!["recommendations".to_owned()],
        endpoints: vec![
            EndpointSpec {
                name: "product_page".to_owned(),
                key: Some("sku".to_owned()),
                deadline: Some(800 * MILLISECOND),
                plan: vec![
                    StepSpec::call("inventory", CallOp::Read),
                    call(
                        "recommendations",
                        CallOp::Read,
                        LeafSpec {
                            optional: true,
                            feature: Some("recommendations".to_owned()),
                            fallback: vec![FallbackSpec::Static("popular".to_owned())],
                            max_attempts: None,
                            fallback_cpu: 0,
                        },
                    ),
                ],
                ..EndpointSpec::default()
            },
            EndpointSpec {
                name: "checkout".to_owned(),
                key: Some("order".to_owned()),
                tier: Tier::Critical,
                plan: vec![StepSpec::Par(vec![
                    StepSpec::call("inventory", CallOp::Read),
                    StepSpec::call("payments", CallOp::Write),
                ])],
                ..EndpointSpec::default()
            },
        ],
    }
}

fn errors(spec: &ServiceSpec) -> Vec<ConfigError> {
    spec.build().expect_err("the spec should be refused")
}

fn fields(errors: &[ConfigError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn the_shop_resolves_to_ids_in_a_pre_order_arena() {
    let service = shop().build().unwrap();
    let page = &service.endpoints[0];
    assert_eq!(page.key, Some(KeySpaceId(0)));
    assert_eq!(page.deadline, Some(800 * MILLISECOND));
    assert_eq!(page.tier, Tier::Important);
    // A list of two is a seq; its children follow it.
    assert_eq!(page.plan.steps[0], Step::Seq(vec![StepId(1), StepId(2)]));
    assert_eq!(
        page.plan.parents,
        vec![None, Some(StepId(0)), Some(StepId(0))]
    );
    let Step::Call(recs) = page.plan.step(StepId(2)) else {
        panic!("a call");
    };
    assert_eq!(recs.dependency, DependencyId(2));
    assert_eq!(recs.leaf.feature, Some(FeatureId(0)));
    assert!(recs.leaf.optional);
    assert_eq!(
        recs.leaf.fallback,
        vec![Fallback::Static("popular".to_owned())]
    );
    assert_eq!(page.plan.part_name(&service, StepId(1)), Some("inventory"));
    assert_eq!(
        page.plan.part_name(&service, StepId(2)),
        Some("recommendations")
    );
    assert_eq!(page.plan.part_name(&service, StepId(0)), None);
    // A list of one is that step alone.
    let checkout = &service.endpoints[1];
    assert_eq!(checkout.tier, Tier::Critical);
    assert_eq!(
        checkout.plan.steps[0],
        Step::Par(vec![StepId(1), StepId(2)])
    );
    assert_eq!(service.endpoint_named("checkout"), Some(EndpointId(1)));
    assert_eq!(service.dependency_named("payments"), Some(DependencyId(0)));
    assert_eq!(service.endpoint_named("nope"), None);
}

#[test]
fn unknown_names_are_all_reported_at_once_with_what_is_declared() {
    let mut spec = shop();
    spec.endpoints[1].plan = vec![StepSpec::Par(vec![
        StepSpec::call("inventory", CallOp::Read),
        StepSpec::call("paymnets", CallOp::Write),
    ])];
    spec.endpoints[0].key = Some("skus".to_owned());
    spec.endpoints[0].plan[1] = call(
        "recommendations",
        CallOp::Read,
        LeafSpec {
            optional: true,
            feature: Some("recs".to_owned()),
            fallback: vec![FallbackSpec::Call {
                call: "cdn".to_owned(),
                op: CallOp::Read,
            }],
            max_attempts: None,
            fallback_cpu: 0,
        },
    );
    let errors = errors(&spec);
    assert_eq!(
        fields(&errors),
        vec![
            "endpoints.product_page.key",
            "endpoints.product_page.plan[1].feature",
            "endpoints.product_page.plan[1].fallback[0].call",
            "endpoints.checkout.plan[0].par[1].call",
        ]
    );
    assert_eq!(
        errors[0].reason,
        "unknown key space `skus`; declared: `sku`, `order`"
    );
    assert_eq!(
        errors[1].reason,
        "unknown feature `recs`; declared: `recommendations`"
    );
    assert_eq!(
        errors[3].reason,
        "unknown dependency `paymnets`; declared: `payments`, `inventory`, `recommendations`"
    );
    assert_eq!(
        errors[3].to_string(),
        "invalid `endpoints.checkout.plan[0].par[1].call`: unknown dependency `paymnets`; \
         declared: `payments`, `inventory`, `recommendations`"
    );
}

#[test]
fn an_unknown_key_space_on_a_call_is_reported() {
    let mut spec = shop();
    spec.endpoints[0].plan[0] = StepSpec::Call {
        call: "inventory".to_owned(),
        op: CallOp::Read,
        key: Some("warehouse".to_owned()),
        leaf: LeafSpec::default(),
    };
    let errors = errors(&spec);
    assert_eq!(fields(&errors), vec!["endpoints.product_page.plan[0].key"]);
    assert!(errors[0]
        .reason
        .starts_with("unknown key space `warehouse`"));
}

#[test]
fn a_call_in_an_endpoint_without_a_key_must_name_a_key_space() {
    let mut spec = shop();
    spec.endpoints[0].key = None;
    spec.endpoints[0].plan[1] = StepSpec::Call {
        call: "recommendations".to_owned(),
        op: CallOp::Read,
        key: Some("sku".to_owned()),
        leaf: LeafSpec::default(),
    };
    let errors = errors(&spec);
    assert_eq!(fields(&errors), vec!["endpoints.product_page.plan[0].key"]);
    // A local step's fallback call uses the request's key, so it needs one too.
    spec.endpoints[0].plan = vec![StepSpec::Local {
        answer: "banner".to_owned(),
        leaf: fallback(
            vec![FallbackSpec::Call {
                call: "inventory".to_owned(),
                op: CallOp::Read,
            }],
            false,
        ),
    }];
    let errors = self::errors(&spec);
    assert_eq!(
        fields(&errors),
        vec!["endpoints.product_page.plan[0].fallback[0]"]
    );
}

#[test]
fn a_cache_fallback_needs_a_cache_and_a_read() {
    let mut spec = shop();
    spec.endpoints[0].plan = vec![
        call(
            "payments",
            CallOp::Read,
            fallback(vec![FallbackSpec::Cache], false),
        ),
        call(
            "inventory",
            CallOp::Write,
            fallback(vec![FallbackSpec::Cache], false),
        ),
        StepSpec::Local {
            answer: "banner".to_owned(),
            leaf: fallback(vec![FallbackSpec::Cache], false),
        },
        // Unknown dependency: one error, not a second one about its cache.
        call(
            "nope",
            CallOp::Read,
            fallback(vec![FallbackSpec::Cache], false),
        ),
    ];
    let errors = errors(&spec);
    assert_eq!(
        fields(&errors),
        vec![
            "endpoints.product_page.plan[0].fallback[0]",
            "endpoints.product_page.plan[1].fallback[0]",
            "endpoints.product_page.plan[2].fallback[0]",
            "endpoints.product_page.plan[3].call",
        ]
    );
    assert_eq!(
        errors[0].reason,
        "dependency `payments` has no cache; dependencies with one: inventory"
    );
    assert!(errors[1].reason.contains("reads only"), "{}", errors[1]);
    assert!(errors[2].reason.contains("local step"), "{}", errors[2]);
}

#[test]
fn a_write_to_a_dependency_without_a_queue_is_allowed() {
    let mut spec = shop();
    spec.endpoints[0].plan = vec![StepSpec::call("inventory", CallOp::Write)];
    let service = spec.build().unwrap();
    assert!(service.dependencies[1].engine.queue.is_none());
}

#[test]
fn empty_plans_seqs_and_pars_are_refused() {
    let mut spec = shop();
    spec.endpoints[0].plan = vec![];
    spec.endpoints[1].plan = vec![
        StepSpec::Seq(vec![]),
        StepSpec::Par(vec![StepSpec::Par(vec![])]),
    ];
    let errors = errors(&spec);
    assert_eq!(
        fields(&errors),
        vec![
            "endpoints.product_page.plan",
            "endpoints.checkout.plan[0].seq",
            "endpoints.checkout.plan[1].par[0].par",
        ]
    );
}

#[test]
fn critical_endpoints_cannot_be_disabled_by_a_feature() {
    let mut spec = shop();
    spec.endpoints[1].feature = Some("recommendations".to_owned());
    spec.endpoints[1].plan = vec![
        call(
            "inventory",
            CallOp::Read,
            LeafSpec {
                feature: Some("recommendations".to_owned()),
                ..LeafSpec::default()
            },
        ),
        // An optional part of a critical endpoint may be gated.
        call(
            "recommendations",
            CallOp::Read,
            LeafSpec {
                optional: true,
                feature: Some("recommendations".to_owned()),
                fallback: vec![FallbackSpec::Omit],
                max_attempts: None,
                fallback_cpu: 0,
            },
        ),
    ];
    let errors = errors(&spec);
    assert_eq!(
        fields(&errors),
        vec![
            "endpoints.checkout.feature",
            "endpoints.checkout.plan[0].feature",
        ]
    );
    // The same on an important endpoint is fine.
    spec.endpoints[1].tier = Tier::Important;
    spec.build().unwrap();
}

#[test]
fn omit_is_last_and_only_on_optional_steps() {
    let mut spec = shop();
    spec.endpoints[0].plan = vec![
        call(
            "recommendations",
            CallOp::Read,
            fallback(vec![FallbackSpec::Omit], false),
        ),
        call(
            "recommendations",
            CallOp::Read,
            fallback(
                vec![FallbackSpec::Omit, FallbackSpec::Static("x".to_owned())],
                true,
            ),
        ),
        call(
            "recommendations",
            CallOp::Read,
            fallback(
                vec![FallbackSpec::Static("x".to_owned()), FallbackSpec::Omit],
                true,
            ),
        ),
    ];
    let errors = errors(&spec);
    assert_eq!(
        fields(&errors),
        vec![
            "endpoints.product_page.plan[0].fallback[0]",
            "endpoints.product_page.plan[1].fallback[0]",
        ]
    );
    assert!(errors[0].reason.contains("optional"));
    assert!(errors[1].reason.contains("last"));
}

#[test]
fn names_dependencies_and_limits_are_checked() {
    let mut spec = shop();
    spec.dependencies.push(dep("payments", false, false));
    spec.dependencies[1].engine.timeout = 0;
    spec.dependencies[2].sim.error_rate = 1.5;
    spec.key_spaces[0].keys = Keys::Uniform { n: 0 };
    spec.features.push(String::new());
    spec.endpoints[0].deadline = Some(0);
    let mut deep = StepSpec::call("inventory", CallOp::Read);
    for _ in 0..MAX_PLAN_DEPTH + 1 {
        deep = StepSpec::Seq(vec![deep]);
    }
    spec.endpoints[1].plan = vec![deep];
    spec.endpoints[1].tier = Tier::Important;
    let mut many = StepSpec::call("inventory", CallOp::Read);
    if let StepSpec::Call { leaf, .. } = &mut many {
        leaf.fallback = vec![FallbackSpec::Static("x".to_owned()); MAX_FALLBACKS + 1];
    }
    spec.endpoints.push(EndpointSpec {
        name: "many".to_owned(),
        key: Some("sku".to_owned()),
        plan: vec![many],
        ..EndpointSpec::default()
    });
    let errors = errors(&spec);
    let fields = fields(&errors);
    let expected = [
        "dependencies.payments",
        "keys.sku.n",
        "features",
        "dependencies.inventory.timeout",
        "dependencies.recommendations.error_rate",
        "endpoints.product_page.deadline",
        "endpoints.many.plan[0].fallback",
    ];
    for field in expected {
        assert!(fields.contains(&field), "{field} missing from {fields:?}");
    }
    assert!(
        fields
            .iter()
            .any(|f| f.starts_with("endpoints.checkout.plan[0].seq[0]") && f.ends_with(".seq")),
        "{fields:?}"
    );
}

#[test]
fn stream_keys_come_from_names_only() {
    let a = dep("payments", false, false);
    let mut b = dep("payments", true, true);
    b.engine.timeout = SECOND;
    assert_eq!(a.stream_key(), b.stream_key());
    assert_ne!(a.stream_key(), dep("inventory", false, false).stream_key());
    // FNV-1a's published test vectors: the key is stable across releases.
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn the_seed_service_describes_the_node_of_today() {
    let seed = Service::seed();
    let names: Vec<&str> = seed.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "get_user",
            "get_product",
            "update_user",
            "update_product",
            "get_recommendations",
            "search"
        ]
    );
    // The endpoints line up with the workload's request kinds.
    for kind in crate::model::RequestKind::ALL {
        assert!(seed.endpoint_named(kind.as_str()).is_some(), "{kind:?}");
    }
    let users = seed.dependency_named("users").unwrap();
    let products = seed.dependency_named("products").unwrap();
    assert_eq!((users, products), (DependencyId(0), DependencyId(1)));
    let config = NodeConfig::default();
    for (id, dep) in seed.dependencies.iter().enumerate() {
        assert_eq!(dep.engine.timeout, config.dependencies[id].timeout);
        assert_eq!(
            dep.engine.cache.as_ref(),
            Some(&config.dependencies[id].cache)
        );
        assert_eq!(
            dep.engine.queue.as_ref(),
            Some(&config.dependencies[id].queue)
        );
    }
    let plan = |name: &str| &seed.endpoint(seed.endpoint_named(name).unwrap()).plan;
    let read = |dependency| {
        Step::Call(CallStep {
            dependency,
            op: CallOp::Read,
            key_space: None,
            leaf: Leaf {
                optional: false,
                feature: None,
                fallback: vec![Fallback::Cache],
                max_attempts: None,
                fallback_cpu: 0,
            },
        })
    };
    assert_eq!(plan("get_user").steps, vec![read(users)]);
    assert_eq!(plan("get_product").steps, vec![read(products)]);
    let Step::Call(write) = &plan("update_product").steps[0] else {
        panic!("a call")
    };
    assert_eq!((write.dependency, write.op), (products, CallOp::Write));
    assert!(write.leaf.fallback.is_empty());
    let Step::Local(recs) = &plan("get_recommendations").steps[0] else {
        panic!("a local step")
    };
    assert_eq!(recs.leaf.feature, Some(FeatureId(0)));
    assert_eq!(
        recs.leaf.fallback,
        vec![Fallback::Static("empty".to_owned())]
    );
    let search = seed.endpoint(seed.endpoint_named("search").unwrap());
    assert_eq!(search.key, None);
    assert_eq!(search.plan.part_name(&seed, StepId(0)), Some("search"));
    assert!(seed.endpoints.iter().all(|e| e.deadline.is_none()));
}

#[test]
fn the_seed_defaults_match_a_scenario_that_says_nothing() {
    let text = "duration = \"1s\"\n";
    let scenario = crate::scenario::parse(text, std::path::Path::new("t.toml")).expect("valid");
    let seed = Service::seed();
    for (dep, sim) in seed.dependencies.iter().zip(&scenario.dependencies) {
        assert_eq!(&dep.sim, sim, "{}", dep.name);
    }
    let config = &scenario.node;
    for (dep, c) in seed.dependencies.iter().zip(&config.dependencies) {
        assert_eq!(dep.engine, DependencyEngine::from_config(c));
    }
}

#[test]
fn plans_are_bounded_in_size() {
    let mut spec = shop();
    spec.endpoints[0].plan = vec![StepSpec::call("inventory", CallOp::Read); MAX_PLAN_STEPS];
    let errors = errors(&spec);
    // The seq itself is the step past the limit.
    assert_eq!(fields(&errors), vec!["endpoints.product_page.plan"]);
    spec.endpoints[0].plan.pop();
    spec.build().unwrap();
}
