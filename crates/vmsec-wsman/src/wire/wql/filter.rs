//! A `WHERE` clause as a tree, and its evaluation over instances with WQL's three-valued
//! logic: a comparison with a null or absent property is unknown, and only a clause that is
//! true selects an instance.

use vmsec_cim::{Instance, ObjectPath, Value};

/// One side of a comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    /// A property of the instance, as written; system properties start with `__`.
    Property(String),
    /// A string literal, unquoted and unescaped.
    Str(String),
    /// `TRUE` or `FALSE`.
    Bool(bool),
    /// A decimal integer as written, a leading `+` dropped.
    Int(String),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `=`.
    Eq,
    /// `!=` or `<>`.
    Ne,
    /// `LIKE`, with `%` for any run of characters and `_` for one.
    Like,
}

/// A `WHERE` clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `left op right`.
    Compare {
        /// Left side.
        left: Operand,
        /// The operator.
        op: Op,
        /// Right side (for `LIKE`, a string: the pattern).
        right: Operand,
    },
    /// `NOT e`.
    Not(Box<Expr>),
    /// Every one of them.
    And(Vec<Expr>),
    /// At least one of them.
    Or(Vec<Expr>),
}

/// The system properties a clause may name, each computed from the instance and the host.
pub const SYSTEM_PROPERTIES: [&str; 6] = [
    "__CLASS",
    "__SERVER",
    "__NAMESPACE",
    "__RELPATH",
    "__PATH",
    "__GENUS",
];

impl Expr {
    /// Every property named, in order, system properties included.
    pub fn properties(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Compare { left, right, .. } = e {
                for side in [left, right] {
                    if let Operand::Property(p) = side {
                        out.push(p.as_str());
                    }
                }
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        // The parser bounds the depth, so this recursion is bounded too.
        f(self);
        match self {
            Expr::Compare { .. } => {}
            Expr::Not(e) => e.walk(f),
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.walk(f)),
        }
    }

    /// The `property = literal` conjuncts at the top of the clause (system properties left
    /// out): what a provider may use to look instances up rather than read them all. Literals
    /// as text: strings verbatim, booleans `true`/`false`, integers as written.
    pub fn equalities(&self) -> Vec<(String, String)> {
        let conjuncts: &[Expr] = match self {
            Expr::And(v) => v,
            other => std::slice::from_ref(other),
        };
        conjuncts
            .iter()
            .filter_map(|e| match e {
                Expr::Compare {
                    left: Operand::Property(p),
                    op: Op::Eq,
                    right,
                }
                | Expr::Compare {
                    left: right,
                    op: Op::Eq,
                    right: Operand::Property(p),
                } if !p.starts_with("__") => literal_text(right).map(|v| (p.clone(), v)),
                _ => None,
            })
            .collect()
    }
}

fn literal_text(o: &Operand) -> Option<String> {
    match o {
        Operand::Str(s) | Operand::Int(s) => Some(s.clone()),
        Operand::Bool(b) => Some(b.to_string()),
        Operand::Property(_) => None,
    }
}

/// A value as a comparison sees it: its text, and whether it is a string (strings compare
/// without regard to ASCII case, as WQL does; other values by their exact CIM text).
struct Text {
    text: String,
    string: bool,
}

/// The instances an enumeration returns: the class's own, those matching a `WHERE` clause
/// if there is one. The engine applies it to every instance a provider returns, so a
/// provider may treat the clause as a hint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    expr: Option<Expr>,
    server: String,
}

impl Filter {
    /// Every instance matches.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// The instances for which `expr` is true.
    pub fn new(expr: Expr) -> Filter {
        Filter {
            expr: Some(expr),
            server: String::new(),
        }
    }

    /// The conjunction of `property = literal` pairs, as [`Expr::equalities`] gives them.
    pub fn equal(conditions: Vec<(String, String)>) -> Filter {
        if conditions.is_empty() {
            return Filter::all();
        }
        Filter::new(Expr::And(
            conditions
                .into_iter()
                .map(|(p, v)| Expr::Compare {
                    left: Operand::Property(p),
                    op: Op::Eq,
                    right: Operand::Str(v),
                })
                .collect(),
        ))
    }

    /// The filter with `__SERVER` (and `__PATH`'s host) being `server`.
    pub fn on_server(mut self, server: impl Into<String>) -> Filter {
        self.server = server.into();
        self
    }

    /// The clause, if any.
    pub fn expr(&self) -> Option<&Expr> {
        self.expr.as_ref()
    }

    /// Whether there is no clause (every instance matches).
    pub fn is_empty(&self) -> bool {
        self.expr.is_none()
    }

    /// Whether the clause is true of `instance`. Property names ignore ASCII case. Strings
    /// compare ignoring ASCII case; booleans, integers and datetimes by their CIM text (so
    /// `007` matches no 7). A property that is absent, null, an array, a real, a char16 or a
    /// reference makes its comparison unknown: neither it nor its `NOT` selects anything.
    pub fn matches(&self, instance: &Instance) -> bool {
        self.expr
            .as_ref()
            .is_none_or(|e| self.eval(e, instance) == Some(true))
    }

    fn eval(&self, e: &Expr, inst: &Instance) -> Option<bool> {
        match e {
            Expr::Compare { left, op, right } => {
                let (l, r) = (self.operand(left, inst)?, self.operand(right, inst)?);
                Some(match op {
                    Op::Eq => same(&l, &r),
                    Op::Ne => !same(&l, &r),
                    Op::Like => like(&l.text, &r.text),
                })
            }
            Expr::Not(e) => self.eval(e, inst).map(|v| !v),
            // Kleene logic: false wins an AND, true wins an OR; else an unknown stays.
            Expr::And(v) => {
                let mut unknown = false;
                for e in v {
                    match self.eval(e, inst) {
                        Some(false) => return Some(false),
                        Some(true) => {}
                        None => unknown = true,
                    }
                }
                (!unknown).then_some(true)
            }
            Expr::Or(v) => {
                let mut unknown = false;
                for e in v {
                    match self.eval(e, inst) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => unknown = true,
                    }
                }
                (!unknown).then_some(false)
            }
        }
    }

    fn operand(&self, o: &Operand, inst: &Instance) -> Option<Text> {
        let string = |text: String| Text { text, string: true };
        let exact = |text: String| Text {
            text,
            string: false,
        };
        match o {
            Operand::Str(s) => Some(string(s.clone())),
            Operand::Int(n) => Some(exact(n.clone())),
            Operand::Bool(b) => Some(exact(b.to_string())),
            Operand::Property(p) if p.starts_with("__") => self.system(p, inst).map(string),
            Operand::Property(p) => match inst.value(p)? {
                Value::String(v) => Some(string(v.clone())),
                Value::Boolean(v) => Some(exact(v.to_string())),
                Value::DateTime(d) => Some(exact(d.to_string())),
                v => v
                    .as_u64()
                    .map(|n| n.to_string())
                    .or_else(|| v.as_i64().map(|n| n.to_string()))
                    .map(exact),
            },
        }
    }

    /// A system property as WMI gives it: `__NAMESPACE` with backslashes, `__RELPATH` as
    /// `Class.Key="value"`, `__PATH` the relative path behind `\\SERVER\namespace:`.
    fn system(&self, name: &str, inst: &Instance) -> Option<String> {
        let class = inst.class_name();
        let namespace = || crate::wire::ns::namespace_of(class).replace('/', "\\");
        let relpath = || {
            let mut path = ObjectPath::new(class);
            if let Some(def) = vmsec_cim::schema::class(class) {
                for key in def.keys() {
                    path = path.with_key(key.name, inst.value(key.name)?.clone());
                }
            }
            Some(path.to_string())
        };
        match name.to_ascii_uppercase().as_str() {
            "__CLASS" => Some(class.to_owned()),
            "__SERVER" => Some(self.server.clone()),
            "__NAMESPACE" => Some(namespace()),
            "__RELPATH" => relpath(),
            "__PATH" => Some(format!(
                "\\\\{}\\{}:{}",
                self.server,
                namespace(),
                relpath()?
            )),
            "__GENUS" => Some("2".to_owned()),
            _ => None,
        }
    }
}

fn same(l: &Text, r: &Text) -> bool {
    if l.string || r.string {
        l.text.eq_ignore_ascii_case(&r.text)
    } else {
        l.text == r.text
    }
}

/// Whether `text` matches the LIKE `pattern` (`%` any run, `_` one character), ignoring
/// ASCII case. The greedy walk with one backtrack point to the last `%`: at most
/// len(text) × len(pattern) steps, never exponential.
pub fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    let p: Vec<char> = pattern.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('%') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '_' || c == t[ti] => {
                ti += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '%')
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmsec_cim::CimType;

    fn vm() -> Instance {
        Instance::new("Msvm_ComputerSystem")
            .with(
                "CreationClassName",
                CimType::String,
                Value::String("Msvm_ComputerSystem".into()),
            )
            .with("Name", CimType::String, Value::String("HV01".into()))
            .with("EnabledState", CimType::UInt16, Value::UInt16(2))
            .with("Delta", CimType::SInt32, Value::SInt32(-3))
            .with("Cancellable", CimType::Boolean, Value::Boolean(true))
            .with("Caption", CimType::String, Value::Null)
    }

    fn eq(p: &str, v: Operand) -> Expr {
        Expr::Compare {
            left: Operand::Property(p.into()),
            op: Op::Eq,
            right: v,
        }
    }

    fn s(v: &str) -> Operand {
        Operand::Str(v.into())
    }

    #[test]
    fn equalities_match_as_the_service_compares() {
        let f = |c: &[(&str, &str)]| {
            Filter::equal(
                c.iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                    .collect(),
            )
        };
        let inst = vm();
        assert!(f(&[]).matches(&inst));
        assert!(f(&[("name", "hv01"), ("ENABLEDSTATE", "2")]).matches(&inst));
        assert!(f(&[("Delta", "-3"), ("Cancellable", "TRUE")]).matches(&inst));
        assert!(!f(&[("EnabledState", "02")]).matches(&inst));
        assert!(!f(&[("Name", "hv01"), ("EnabledState", "3")]).matches(&inst));
        assert!(
            !f(&[("Caption", "")]).matches(&inst),
            "null matches nothing"
        );
        assert!(!f(&[("Description", "")]).matches(&inst), "nor does absent");
    }

    #[test]
    fn a_comparison_with_null_is_unknown_and_so_is_its_negation() {
        let inst = vm();
        let caption = eq("Caption", s("x"));
        assert!(!Filter::new(caption.clone()).matches(&inst));
        assert!(!Filter::new(Expr::Not(Box::new(caption.clone()))).matches(&inst));
        let true_one = eq("Name", s("hv01"));
        assert!(Filter::new(Expr::Or(vec![caption.clone(), true_one.clone()])).matches(&inst));
        assert!(!Filter::new(Expr::And(vec![caption, true_one])).matches(&inst));
    }

    #[test]
    fn not_equal_is_the_negation_of_equal_for_known_values() {
        let inst = vm();
        let ne = |p: &str, v: Operand| {
            Filter::new(Expr::Compare {
                left: Operand::Property(p.into()),
                op: Op::Ne,
                right: v,
            })
        };
        assert!(ne("Name", s("HV02")).matches(&inst));
        assert!(!ne("Name", s("hv01")).matches(&inst));
        assert!(ne("EnabledState", Operand::Int("3".into())).matches(&inst));
    }

    #[test]
    fn server_and_the_other_system_properties_are_computed_from_the_instance() {
        let inst = vm();
        let cmp = |l: &str, op: Op, r: Operand| {
            Filter::new(Expr::Compare {
                left: Operand::Property(l.into()),
                op,
                right: r,
            })
            .on_server("HV01")
        };
        let name_is_server = Expr::Compare {
            left: Operand::Property("Name".into()),
            op: Op::Ne,
            right: Operand::Property("__SERVER".into()),
        };
        assert!(!Filter::new(name_is_server).on_server("hv01").matches(&inst));
        assert!(cmp("__CLASS", Op::Eq, s("msvm_computersystem")).matches(&inst));
        assert!(cmp("__NAMESPACE", Op::Eq, s("root\\virtualization\\v2")).matches(&inst));
        assert!(
            cmp(
                "__RELPATH",
                Op::Eq,
                s(r#"Msvm_ComputerSystem.CreationClassName="Msvm_ComputerSystem",Name="HV01""#)
            )
            .matches(&inst)
        );
        assert!(cmp("__PATH", Op::Like, s(r"\\HV01\root\virtualization\v2:%")).matches(&inst));
        assert!(cmp("__GENUS", Op::Eq, s("2")).matches(&inst));
    }

    #[test]
    fn like_takes_percent_for_any_run_and_underscore_for_one_character() {
        assert!(like("Microsoft:B5314955-3924", "microsoft:b5314955%"));
        assert!(like("abc", "a_c"));
        assert!(like("abc", "%"));
        assert!(like("", "%%"));
        assert!(like("a%c", "a%c"));
        assert!(!like("abc", "a_"));
        assert!(!like("abc", "_abc"));
        assert!(like("xaaab", "%a%b"));
        assert!(!like("xaaac", "%a%b"));
    }

    #[test]
    fn like_stays_quadratic_on_its_worst_pattern() {
        let text = "a".repeat(4000);
        let pattern = format!("{}b", "%a".repeat(1000));
        let t0 = std::time::Instant::now();
        assert!(!like(&text, &pattern));
        assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    }

    /// LIKE by the textbook table: `m[i][j]` says whether the first `i` characters of the
    /// text match the first `j` of the pattern.
    fn like_by_table(text: &str, pattern: &str) -> bool {
        let (t, p): (Vec<char>, Vec<char>) = (text.chars().collect(), pattern.chars().collect());
        let mut m = vec![vec![false; p.len() + 1]; t.len() + 1];
        m[0][0] = true;
        for j in 1..=p.len() {
            m[0][j] = m[0][j - 1] && p[j - 1] == '%';
        }
        for i in 1..=t.len() {
            for j in 1..=p.len() {
                m[i][j] = match p[j - 1] {
                    '%' => m[i][j - 1] || m[i - 1][j],
                    '_' => m[i - 1][j - 1],
                    c => m[i - 1][j - 1] && c.eq_ignore_ascii_case(&t[i - 1]),
                };
            }
        }
        m[t.len()][p.len()]
    }

    proptest::proptest! {
        #[test]
        fn like_agrees_with_the_table(text in "[abAB]{0,10}", pattern in "[ab%_]{0,8}") {
            proptest::prop_assert_eq!(like(&text, &pattern), like_by_table(&text, &pattern));
        }
    }

    #[test]
    fn the_top_equalities_are_pushed_down_and_nothing_else() {
        let e = Expr::And(vec![
            eq("InstanceID", s("Microsoft:X")),
            Expr::Compare {
                left: Operand::Int("2".into()),
                op: Op::Eq,
                right: Operand::Property("EnabledState".into()),
            },
            eq("__CLASS", s("Msvm_ComputerSystem")),
            Expr::Or(vec![eq("A", s("1")), eq("B", s("2"))]),
        ]);
        assert_eq!(
            e.equalities(),
            vec![
                ("InstanceID".to_owned(), "Microsoft:X".to_owned()),
                ("EnabledState".to_owned(), "2".to_owned())
            ]
        );
        assert!(Expr::Or(vec![eq("A", s("1"))]).equalities().is_empty());
    }
}
