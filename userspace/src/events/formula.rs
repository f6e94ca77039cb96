//! Metric formulas: arithmetic over abstract event names, evaluated with evalexpr.

use std::collections::BTreeMap;

use evalexpr::{ContextWithMutableVariables, DefaultNumericTypes, HashMapContext, Value};

/// Names a formula refers to.
pub fn identifiers(formula: &str) -> Result<Vec<String>, String> {
    let tree = evalexpr::build_operator_tree::<DefaultNumericTypes>(formula)
        .map_err(|e| format!("formula {formula:?}: {e}"))?;
    let mut ids: Vec<String> = tree
        .iter_variable_identifiers()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Evaluate `formula` with `values` (all treated as floats). Division by zero gives
/// a non-finite result, which callers report as "no data".
pub fn eval(formula: &str, values: &BTreeMap<String, f64>) -> Result<f64, String> {
    let mut ctx = HashMapContext::<DefaultNumericTypes>::new();
    for (k, v) in values {
        ctx.set_value(k.clone(), Value::Float(*v))
            .map_err(|e| e.to_string())?;
    }
    let tree = evalexpr::build_operator_tree::<DefaultNumericTypes>(formula)
        .map_err(|e| format!("formula {formula:?}: {e}"))?;
    match tree
        .eval_with_context(&ctx)
        .map_err(|e| format!("formula {formula:?}: {e}"))?
    {
        Value::Float(f) => Ok(f),
        Value::Int(i) => Ok(i as f64),
        other => Err(format!("formula {formula:?} gave {other:?}, not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_with_float_semantics() {
        let v: BTreeMap<String, f64> = [("a".to_string(), 3.0), ("b".to_string(), 4.0)].into();
        assert_eq!(eval("1000 * a / b", &v).unwrap(), 750.0);
        assert_eq!(eval("1 - a / b", &v).unwrap(), 0.25);
        assert_eq!(
            identifiers("(a - b) / (a + c)").unwrap(),
            vec!["a", "b", "c"]
        );
        assert!(eval("a / 0", &v).map(|x| !x.is_finite()).unwrap_or(true));
        assert!(identifiers("(a + b").is_err());
    }
}
