# -*- coding: utf-8 -*-
# Copyright (c) meshops.sidecarset contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kruise v1.9 ``resourcesPolicy``: Kubernetes quantities, Kruise's resource calculator and the policy itself.

Everything here follows Kruise v1.9.0 to the byte:

* ``Quantity`` is k8s.io/apimachinery's ``resource.Quantity`` as far as Kruise uses it: ``parse_quantity``
  (``ParseQuantity``, rounded up to nano units), ``add``/``neg``/``milli_value`` (rounded up)/``set_milli``, ``cmp``
  and the canonical ``str`` the API server stores (``CanonicalizeBytes``: DecimalSI ``500m``/``1k``, BinarySI
  ``512Mi`` when the value is an integer of at least 1024, DecimalExponent ``1e3``).
* ``evaluate`` is Kruise's calculator (``pkg/util/calculator``: calculator.y, lexer.go): ``+ - * /``, unary minus,
  ``max(a, b)``, ``min(a, b)``, numbers, percentages (``50%`` is 0.5), quantities (``50m``, ``100Mi``) and one
  variable. Its quirks are kept: a number token that does not parse as a float (``50x``, ``1e``) is 0, a number
  times a quantity works on milli units as float64 truncated to an integer, ``quantity * quantity`` and
  ``x / quantity`` are errors, a result below zero is an error, and a later error replaces an earlier one.
* ``apply_resources_policy`` is ``applyResourcesPolicy`` (pkg/webhook/pod/mutating/sidecarset_resources.go) and
  ``validate_resources_policy`` is ``validateResourcesPolicy`` (pkg/webhook/sidecarset/validating), with Kruise's
  messages.

Regular expressions: Kruise uses Go's RE2 (unanchored ``MatchString``). Python's ``re`` is used with ``search``;
the constructs RE2 refuses (look-around, back-references, possessive/atomic groups, conditionals) are refused here
too, so a regex valid here behaves as in Kruise for ASCII names.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re
from decimal import Decimal
from fractions import Fraction

from ansible_collections.meshops.sidecarset.plugins.module_utils.errors import SidecarSetError

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXP = {v: k for k, v in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXP = {v: k for k, v in _BINARY_SUFFIXES.items()}
_QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_NANO = Fraction(1, 10 ** 9)


class ResourcesPolicyRefusal(SidecarSetError):
    """A pod that ``resourcesPolicy`` refuses (no target container, an expression that fails on its resources), as
    Kruise's webhook refuses its creation; the manifest code adds the file, document or workload."""


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


class Quantity(object):
    """An exact value and a format, as ``resource.Quantity``."""

    __slots__ = ("value", "fmt")

    def __init__(self, value=0, fmt=""):
        self.value = Fraction(value)
        self.fmt = fmt

    def copy(self):
        """DeepCopy."""
        return Quantity(self.value, self.fmt)

    def add(self, other):
        """Add in place: the format becomes the other's when this one is zero (apimachinery's rule)."""
        if self.value == 0:
            self.fmt = other.fmt
        self.value += other.value

    def neg(self):
        """Neg in place."""
        self.value = -self.value

    def milli_value(self):
        """MilliValue: value * 1000 rounded away from zero."""
        scaled = self.value * 1000
        return int(math.ceil(scaled)) if scaled >= 0 else -int(math.ceil(-scaled))

    def set_milli(self, milli):
        """SetMilli: the value becomes ``milli``/1000, the format is kept."""
        self.value = Fraction(int(milli), 1000)

    def cmp(self, other):
        """Cmp: -1, 0 or 1."""
        return (self.value > other.value) - (self.value < other.value)

    def __str__(self):
        return canonical(self)

    def __repr__(self):
        return "Quantity(%r)" % canonical(self)


def new_milli_quantity(milli, fmt=DECIMAL_SI):
    """NewMilliQuantity."""
    return Quantity(Fraction(int(milli), 1000), fmt)


def parse_quantity(text):
    """ParseQuantity: ``Quantity`` of a string such as ``100m``, ``1.5Gi``, ``1e3``; ``QuantityError`` if not one."""
    if not isinstance(text, str):
        raise QuantityError("quantities must be strings, not %s" % type(text).__name__)
    match = _QUANTITY_RE.match(text)
    if not text or not match:
        raise QuantityError("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, suffix = match.groups()
    try:
        value = Fraction(number)
    except (ValueError, ZeroDivisionError):
        raise QuantityError("unable to parse quantity's suffix")
    if number.count(".") > 1 or number in (".", "+.", "-."):
        raise QuantityError("unable to parse quantity's suffix")
    if suffix in _BINARY_SUFFIXES:
        fmt, value = BINARY_SI, value * (2 ** _BINARY_SUFFIXES[suffix])
    elif suffix in _DECIMAL_SUFFIXES:
        fmt, value = DECIMAL_SI, value * Fraction(10) ** _DECIMAL_SUFFIXES[suffix]
    elif re.match(r"^[eE][-+]?[0-9]+$", suffix):
        fmt, value = DECIMAL_EXPONENT, value * Fraction(10) ** int(suffix[1:])
    else:
        raise QuantityError("unable to parse quantity's suffix")
    # apimachinery keeps at most nano precision, rounding away from zero
    scaled = value / _NANO
    if scaled.denominator != 1:
        scaled = Fraction(math.ceil(scaled)) if scaled > 0 else Fraction(math.floor(scaled))
        value = scaled * _NANO
    return Quantity(value, fmt)


def _decimal_parts(value):
    """(integer mantissa, exponent multiple of 3) with the fewest digits (int64Amount.AsCanonicalBytes)."""
    exponent = 0
    while value.denominator != 1:
        value *= 10
        exponent -= 1
    mantissa = value.numerator
    while mantissa != 0 and mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    rest = exponent % 3
    mantissa *= 10 ** rest
    exponent -= rest
    return mantissa, exponent


def canonical(quantity):
    """The canonical string the API server stores (``Quantity.String``)."""
    value = quantity.value
    if value == 0:
        return "0"
    fmt = quantity.fmt
    if fmt == BINARY_SI and (-1024 < value < 1024 or value.denominator != 1):
        fmt = DECIMAL_SI
    if fmt not in (DECIMAL_SI, BINARY_SI):
        fmt = DECIMAL_EXPONENT
    if fmt == BINARY_SI:
        mantissa, exponent = value.numerator, 0
        while mantissa % 1024 == 0 and exponent < 60:
            mantissa //= 1024
            exponent += 10
        return "%d%s" % (mantissa, _BINARY_BY_EXP.get(exponent, ""))
    mantissa, exponent = _decimal_parts(value)
    if fmt == DECIMAL_SI and exponent in _DECIMAL_BY_EXP:
        return "%d%s" % (mantissa, _DECIMAL_BY_EXP[exponent])
    if exponent == 0:
        return "%d" % mantissa
    return "%de%d" % (mantissa, exponent)


def format_g(number):
    """Go's ``%g`` of a float64: the shortest digits, exponent form when the exponent is below -4 or at least 6."""
    if math.isnan(number):
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(float(number))).normalize().as_tuple()
    digits = "".join(str(d) for d in digits)
    point = len(digits) + exponent
    sign = "-" if sign else ""
    if point - 1 < -4 or point - 1 >= 6:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return "%s%se%s%02d" % (sign, body, "-" if point - 1 < 0 else "+", abs(point - 1))
    if point <= 0:
        return "%s0.%s%s" % (sign, "0" * (-point), digits)
    if point >= len(digits):
        return "%s%s%s" % (sign, digits, "0" * (point - len(digits)))
    return "%s%s.%s" % (sign, digits[:point], digits[point:])


class Value(object):
    """Kruise calculator's Value: a float64 number or a Quantity."""

    __slots__ = ("is_quantity", "number", "quantity")

    def __init__(self, number=0.0, quantity=None):
        self.is_quantity = quantity is not None
        self.number = float(number)
        self.quantity = quantity

    def __str__(self):
        return str(self.quantity) if self.is_quantity else format_g(self.number)


def _go_int64(number):
    """Go's int64(float64): truncation toward zero."""
    if math.isnan(number) or math.isinf(number):
        return -(2 ** 63)
    return int(number)


class CalculatorError(ValueError):
    """An expression Kruise's calculator refuses (the message is Kruise's)."""


_UNITS = ("m", "k", "M", "G", "T", "P", "Ki", "Mi", "Gi", "Ti", "Pi")
_NUM_CHARS = set("0123456789.eE+-")


class _Lexer(object):
    """lexer.go over ASCII text."""

    def __init__(self, text):
        self.text = text
        self.pos = 0
        self.col = 1

    def _peek(self):
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self):
        char = self._peek()
        if char:
            self.pos += 1
            self.col = 1 if char == "\n" else self.col + 1
        return char

    def _read_number(self):
        start = self.pos
        seen_dot = seen_e = seen_pct = expect_digit = False
        while True:
            char = self._peek()
            if not char:
                break
            if char.isdigit():
                expect_digit = False
                self._next()
            elif char == ".":
                if seen_dot or seen_e or seen_pct:
                    break
                seen_dot = True
                self._next()
            elif char in "eE":
                if seen_e or seen_pct:
                    break
                seen_e = expect_digit = True
                self._next()
            elif char in "+-":
                if not expect_digit:
                    break
                expect_digit = False
                self._next()
            elif char == "%":
                if seen_pct:
                    break
                seen_pct = True
                self._next()
            elif char.isalpha():
                if expect_digit:
                    break
                while self._peek().isalpha():
                    self._next()
                break
            else:
                break
        return self.text[start:self.pos]

    @staticmethod
    def _is_quantity(token):
        end = 0
        for index, char in enumerate(token):
            if char not in _NUM_CHARS:
                end = index
                break
        return end != 0 and token[end:] in _UNITS

    def tokens(self):
        """List of (kind, text, col after the token); kind NUMBER, QUANTITY, IDENT, a character, or EOF."""
        out = []
        while True:
            while self._peek() and self._peek().isspace():
                self._next()
            char = self._peek()
            if not char:
                out.append(("EOF", "", self.col))
                return out
            if char in "+-*/(),":
                self._next()
                out.append((char, char, self.col))
            elif char == "." or char.isdigit():
                token = self._read_number()
                out.append(("QUANTITY" if self._is_quantity(token) else "NUMBER", token, self.col))
            elif char.isalpha():
                start = self.pos
                while self._peek() and (self._peek().isalnum() or self._peek() == "_"):
                    self._next()
                out.append(("IDENT", self.text[start:self.pos], self.col))
            else:
                self._next()
                out.append((char, char, self.col))


class _SyntaxError(Exception):
    pass


class _Calculator(object):
    """calculator.y's semantic actions over a recursive-descent parse (same reductions, same order)."""

    def __init__(self, text, variables):
        self.tokens = _Lexer(text).tokens()
        self.index = 0
        self.variables = variables
        self.last_error = None

    # --- grammar -------------------------------------------------------------------------------------------
    def _peek(self):
        return self.tokens[self.index][0]

    def _take(self, kind=None):
        token = self.tokens[self.index]
        if kind is not None and token[0] != kind:
            raise _SyntaxError(token[2])
        self.index += 1
        return token

    def parse(self):
        """The input rule: expr then EOF."""
        result = self._expr()
        if self._peek() != "EOF":
            raise _SyntaxError(self.tokens[self.index][2])
        return result

    def _expr(self):
        left = self._term()
        while self._peek() in ("+", "-"):
            operator = self._take()[0]
            right = self._term()
            left = self._add(left, right) if operator == "+" else self._sub(left, right)
            if left is None and self.last_error is None:
                self.last_error = "invalid %s operation" % ("addition" if operator == "+" else "subtraction")
        return left

    def _term(self):
        left = self._factor()
        while self._peek() in ("*", "/"):
            operator = self._take()[0]
            right = self._factor()
            left = self._mul(left, right) if operator == "*" else self._div(left, right)
            if left is None and self.last_error is None:
                self.last_error = "invalid %s operation" % ("multiplication" if operator == "*" else "division")
        return left

    def _factor(self):
        kind, text, col = self._take()
        if kind == "NUMBER":
            return Value(number=self._parse_number(text))
        if kind == "QUANTITY":
            try:
                return Value(quantity=parse_quantity(text))
            except QuantityError as exc:
                self.last_error = str(exc)
                return None
        if kind == "IDENT":
            if self._peek() == "(":
                self._take()
                args = [self._expr()]
                if self._peek() == ",":
                    self._take()
                    args.append(self._expr())
                self._take(")")
                result = self._call(text, args)
                if result is None and self.last_error is None:
                    self.last_error = "function call failed"
                return result
            value = self.variables.get(text.lower())
            if value is None:
                self.last_error = "undefined variable: %s" % text.lower()
            return value
        if kind == "(":
            value = self._expr()
            self._take(")")
            return value
        if kind == "-":
            value = self._factor()
            return None if value is None else self._negate(value)
        raise _SyntaxError(col)

    # --- semantics -----------------------------------------------------------------------------------------
    @staticmethod
    def _parse_number(text):
        try:
            if text.endswith("%"):
                return float(text[:-1]) / 100
            return float(text)
        except ValueError:
            return 0.0

    @staticmethod
    def _to_quantity(value):
        if value.is_quantity:
            return value.quantity.copy()
        return new_milli_quantity(_go_int64(value.number * 1000))

    def _add(self, left, right):
        if left is None or right is None:
            return None
        if left.is_quantity or right.is_quantity:
            result = self._to_quantity(left)
            result.add(self._to_quantity(right))
            return Value(quantity=result)
        return Value(number=left.number + right.number)

    @staticmethod
    def _negate(value):
        if value.is_quantity:
            negated = value.quantity.copy()
            negated.neg()
            return Value(quantity=negated)
        return Value(number=-value.number)

    def _sub(self, left, right):
        if left is None or right is None:
            return None
        if left.is_quantity or right.is_quantity:
            right = Value(quantity=self._to_quantity(right))  # a number becomes milli units before the sign flips
        return self._add(left, self._negate(right))

    def _mul(self, left, right):
        if left is None or right is None:
            return None
        if left.is_quantity and right.is_quantity:
            self.last_error = "multiplication of two quantities"
            return None
        if left.is_quantity or right.is_quantity:
            quantity, number = (left, right) if left.is_quantity else (right, left)
            result = quantity.quantity.copy()
            result.set_milli(_go_int64(float(quantity.quantity.milli_value()) * number.number))
            return Value(quantity=result)
        return Value(number=left.number * right.number)

    def _div(self, left, right):
        if left is None or right is None:
            return None
        if right.is_quantity:
            self.last_error = "division by quantity"
            return None
        if right.number == 0:
            self.last_error = "division by zero"
            return None
        if left.is_quantity:
            result = left.quantity.copy()
            result.set_milli(_go_int64(float(left.quantity.milli_value()) / right.number))
            return Value(quantity=result)
        return Value(number=left.number / right.number)

    def _call(self, name, args):
        lowered = name.lower()
        if lowered not in ("max", "min"):
            self.last_error = "unknown function: %s" % name
            return None
        if len(args) != 2:
            self.last_error = "%s function requires exactly 2 arguments, got %d" % (lowered, len(args))
            return None
        left, right = args
        if left is None or right is None:
            return None
        pick_left = (lambda c: c >= 0) if lowered == "max" else (lambda c: c <= 0)
        if left.is_quantity or right.is_quantity:
            left_q, right_q = self._to_quantity(left), self._to_quantity(right)
            return Value(quantity=left_q if pick_left(left_q.cmp(right_q)) else right_q)
        if pick_left((left.number > right.number) - (left.number < right.number)):
            return Value(number=left.number)
        return Value(number=right.number)


def evaluate(expression, variables=None):
    """Kruise's ``Calculator.Parse``: the ``Value`` of ``expression`` with ``variables`` (name -> ``Value``, or a
    ``Quantity``/number); ``CalculatorError`` with Kruise's message when it fails."""
    bound = {}
    for name, value in (variables or {}).items():
        if isinstance(value, Quantity):
            value = Value(quantity=value)
        elif not isinstance(value, Value):
            value = Value(number=value)
        bound[name.lower()] = value
    calc = _Calculator(expression, bound)
    try:
        result = calc.parse()
    except _SyntaxError as exc:
        if calc.last_error is not None:
            raise CalculatorError(calc.last_error)
        raise CalculatorError("parse error: syntax error at line 1, col %d" % exc.args[0])
    if result is None:
        raise CalculatorError(calc.last_error or "no result from parser")
    if result.is_quantity and result.quantity.value < 0:
        raise CalculatorError("calculation result is negative: %s" % result.quantity)
    if not result.is_quantity and result.number < 0:
        raise CalculatorError("calculation result is negative: %s" % format_g(result.number))
    return result


# --- resourcesPolicy -------------------------------------------------------------------------------------------

_RE2_UNSUPPORTED = re.compile(r"\(\?[=!<>]|\(\?P=|\(\?\(|\\[1-9]|\(\?>|[*+?}]\+")


def compile_regex(pattern):
    """Compile a targetContainersNameRegex; ``ValueError`` with the reason when RE2 (Go) or Python refuses it."""
    if not isinstance(pattern, str):
        raise ValueError("must be a string")
    found = _RE2_UNSUPPORTED.search(pattern)
    if found:
        raise ValueError("error parsing regexp: invalid or unsupported Perl syntax: `%s`" % found.group(0))
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError("error parsing regexp: %s: `%s`" % (exc.msg, pattern))


_EXPR_KEYS = ("cpu", "memory")
DEFAULT_NAME_REGEX = ".*"


def _go_value(value):
    return _go_quote(value) if isinstance(value, str) else repr(value)


def validate_resources_policy(container, path, is_init):
    """Kruise's validation of ``container.resourcesPolicy`` (``path`` is the container's); list of (field, message).

    The order and wording are Kruise v1.9's (``validateContainersForSidecarSet`` / ``validateResourcesPolicy`` in
    pkg/webhook/sidecarset/validating, and the CRD's enum for ``targetContainersMode``). Unknown keys and wrongly
    typed values are the caller's (``sidecarset.check_struct`` walks ``hashing.STRUCTS``); values of the wrong type
    are skipped here. ``targetContainersNameRegex`` is expected defaulted (the CRD's ``.*`` when it is absent).
    """
    policy = container.get("resourcesPolicy")
    if not isinstance(policy, dict):
        return []
    path = "%s.resourcesPolicy" % path
    errors = []
    if is_init and container.get("restartPolicy") != "Always":
        errors.append((path, "resourcesPolicy is only supported for containers with RestartPolicy Always"))
    resources = container.get("resources") or {}
    if isinstance(resources, dict) and (resources.get("limits") or resources.get("requests")):
        errors.append((path, "resourcesPolicy and resources cannot be configured together"))
        return errors
    mode = policy.get("targetContainersMode")
    if mode is None or mode == "":
        errors.append(("%s.targetContainersMode" % path, "Required value"))
    elif mode not in ("sum", "max"):
        errors.append(("%s.targetContainersMode" % path, "Unsupported value: %s: supported values: \"sum\", \"max\""
                       % _go_value(mode)))
    regex = policy.get("targetContainersNameRegex")
    if regex is None or regex == "":
        errors.append(("%s.targetContainersNameRegex" % path, "invalid empty regex"))
    elif isinstance(regex, str):
        try:
            compile_regex(regex)
        except ValueError as exc:
            errors.append(("%s.targetContainersNameRegex" % path, "invalid regex pattern: %s" % exc))
    expr = policy.get("resourcesExpr")
    expr_path = "%s.resourcesExpr" % path
    if expr is None:
        expr = {}
    if not isinstance(expr, dict):
        return errors
    if expr.get("limits") is None and expr.get("requests") is None:
        errors.append((expr_path, "at least one of limits or requests must be configured"))
        return errors
    for part in ("limits", "requests"):
        values = expr.get(part)
        if not isinstance(values, dict):
            continue
        for resource_name in _EXPR_KEYS:
            text = values.get(resource_name)
            if not isinstance(text, str) or text == "":
                continue
            try:
                evaluate(text, {resource_name: Value(number=1.0)})
            except CalculatorError as exc:
                errors.append(("%s.%s.%s" % (expr_path, part, resource_name), "invalid expression: %s" % exc))
    return errors


def default_resources_policy(container):
    """The CRD default of ``targetContainersNameRegex`` (``.*`` when absent), in place; it is part of the hash."""
    policy = container.get("resourcesPolicy") if isinstance(container, dict) else None
    if isinstance(policy, dict) and policy.get("targetContainersNameRegex") is None:
        policy["targetContainersNameRegex"] = DEFAULT_NAME_REGEX


def _resource_of(container, part, name):
    values = ((container.get("resources") or {}).get(part) or {})
    if name not in values:
        return None
    text = values[name]
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)
    return parse_quantity(text)


def _sum(quantities):
    total = Quantity(0, DECIMAL_SI)
    for quantity in quantities:
        total.add(quantity)
    return total


def _largest(quantities):
    return max(quantities, key=lambda quantity: quantity.value, default=None)  # the first of the largest


def aggregate(targets, mode):
    """``aggregateResources``: ({name: Quantity} limits, {name: Quantity} requests) of the target containers; a
    limit is present only when every target has it; a missing request counts as 0 (and a zero sum is absent)."""
    limits, requests = {}, {}
    pick = _sum if mode == "sum" else _largest
    for name in ("cpu", "memory"):
        limit_values = [_resource_of(c, "limits", name) for c in targets]
        request = pick([q for q in (_resource_of(c, "requests", name) for c in targets) if q is not None])
        if (mode == "sum" or limit_values) and all(q is not None for q in limit_values):
            limits[name] = pick(limit_values)
        if request is not None and (mode != "sum" or request.value != 0):
            requests[name] = request
    return limits, requests


_MEMORY_WORD = re.compile(r"\bmemory\b")


def evaluate_resource_expression(expression, aggregated, is_limit):
    """``evaluateResourceExpression``: the Quantity (or None for an unlimited limit) of one expression; the variable
    is ``memory`` when the expression names it, else ``cpu``; a number result is millicores for ``cpu`` and an
    integer for ``memory``."""
    if expression == "":
        return None if is_limit else Quantity(0, DECIMAL_SI)
    var_name = "memory" if _MEMORY_WORD.search(expression) else "cpu"
    try:
        result = evaluate(expression, {var_name: Value(quantity=aggregated if aggregated is not None else Quantity())})
    except CalculatorError as exc:
        raise CalculatorError("failed to parse expression %s: %s" % (_go_quote(expression), exc))
    if result.is_quantity:
        return result.quantity
    if var_name == "cpu":
        return new_milli_quantity(_go_int64(result.number * 1000))
    return Quantity(_go_int64(result.number), DECIMAL_SI)


def _go_quote(text):
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def target_containers(pod_spec, regex, excluded_names):
    """``getTargetContainers``: native-sidecar init containers, then containers, whose names match ``regex``
    (unanchored) and are not in ``excluded_names``."""
    pattern = compile_regex(regex)
    native = [c for c in pod_spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    return [c for c in native + list(pod_spec.get("containers") or ())
            if c.get("name") not in excluded_names and pattern.search(c.get("name") or "")]


def compute_resources(policy, targets):
    """The ``resources`` dict that ``applyResourcesPolicy`` gives the sidecar (canonical quantity strings)."""
    mode = policy.get("targetContainersMode")
    limits, requests = aggregate(targets, mode)
    expr = policy.get("resourcesExpr") or {}
    resources = {}
    labels = {"cpu": "CPU", "memory": "memory"}
    for part, aggregated, is_limit in (("limits", limits, True), ("requests", requests, False)):
        values = expr.get(part)
        if values is None:
            continue
        out = {}
        for name in ("cpu", "memory"):
            text = values.get(name) or ""
            if text == "":
                continue
            if is_limit and name not in aggregated:
                continue
            try:
                quantity = evaluate_resource_expression(text, aggregated.get(name), is_limit)
            except CalculatorError as exc:
                raise CalculatorError("failed to evaluate %s %s expression: %s" % (labels[name], part, exc))
            if quantity is not None:
                out[name] = str(quantity)
        if out:
            resources[part] = out
    return resources


def apply_resources_policy(pod_spec, container, excluded_names, sidecarset=None):
    """Return the ``resources`` of a sidecar with ``resourcesPolicy`` on this pod spec; ``SidecarSetError`` when
    the pod has no target container or an expression fails (the pod is refused, as Kruise's webhook does)."""
    policy = container.get("resourcesPolicy")
    regex = policy.get("targetContainersNameRegex")
    if regex is None:
        regex = DEFAULT_NAME_REGEX
    path = "resourcesPolicy of sidecar %r" % container.get("name")
    try:
        targets = target_containers(pod_spec, regex, excluded_names)
    except ValueError as exc:
        raise ResourcesPolicyRefusal([(path, "failed to get target containers: invalid regex pattern %s: %s"
                                       % (_go_quote(regex), exc))], sidecarset=sidecarset)
    if not targets:
        raise ResourcesPolicyRefusal([(path, "no containers match the regex pattern %s" % _go_quote(regex))],
                                     sidecarset=sidecarset)
    try:
        return compute_resources(policy, targets)
    except (CalculatorError, QuantityError) as exc:
        raise ResourcesPolicyRefusal([(path, str(exc))], sidecarset=sidecarset)
