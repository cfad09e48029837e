"""Prompts: two programs' instructions and full prompts side by side, with the differences highlighted; program B
shipped as a registered MLflow model (with how to load and serve it). A task with several inputs shows every input in
the prompt (a test example's inputs, or one box per input to type your own).

Your own DSPy program (its task names a program file) is shown predictor by predictor from what its runs saved (each
predictor's instruction and prompt in program.json): the page never builds it, which would run the file's code."""

import json

import streamlit as st

from core.analytics.changed import readable
from core.analytics.diff import diff_counts, diff_html
from core.config.errors import StudioError
from core.jobs.repeats import GROUP, entry_of, optimization_choices, seed_choices
from core.program.program import program_from_dict, prompt_text, render_prompt
from core.ship.register import (
    MODEL_URI_TAG,
    export_model,
    load_snippet,
    prompt_snippet,
    serve_command,
    shipped_from_uri,
    untested_reason,
)
from core.tasks import Task
from core.tracking.runs import (
    EVAL_KINDS,
    PROMPT_URI_TAG,
    latest_optimization,
    linked_evaluations,
    optimization_frame,
    run_choices,
)
from ui import cache, routing, state
from ui.notebook import starting_program
from ui.widgets import studio_errors

CUSTOM = -1
STUDIO = "the studio's program"  # the one predictor of a program the studio built, beside your own program's
MARKED = ("capped", "cancelled", "failed")  # optimizations that stopped early: their programs say so

routing.require_app(__file__)
st.title("Prompts")
st.write("What the optimization changed: the instruction, and the exact messages each program sends for an example.")

with studio_errors(stop=True):
    runs = cache.runs_table()
evals = runs[runs["kind"].isin(EVAL_KINDS)] if not runs.empty else runs
if evals.empty:
    st.info("No programs yet: every baseline and evaluation run saves the program it scored.")
    st.page_link("pages/optimize.py", label="Optimize a prompt", icon=":material/auto_fix_high:")
    st.stop()

opts = optimization_frame(runs)
if not opts.empty:  # only baselines: no optimization frame columns to sort on
    opts = opts[opts["has_results"]].sort_values("start_time", ascending=False, na_position="last")
outcome = dict(zip(opts["run_id"], opts["outcome"], strict=True)) if not opts.empty else {}
choices = {rid: label + (f" · {outcome[parent]}" if outcome.get(parent) in MARKED else "")
           for (rid, label), parent in zip(run_choices(evals).items(), evals["parent_run_id"], strict=True)}
ids = list(choices)


def task_of(program: dict) -> Task | None:
    """The task a saved program was made for: its inputs are the fields every rendered prompt must show."""
    try:
        return Task.from_dict(program["task"])
    except (KeyError, TypeError, ValueError):
        return None


def inputs_of(text: str, names: list[str]) -> dict[str, str]:
    """A test example's inputs from its records cell: several inputs are a JSON object there, by field name."""
    try:
        values = json.loads(text) if len(names) > 1 else None
    except ValueError:
        values = None
    if isinstance(values, dict):
        return {name: "" if values.get(name) is None else str(values.get(name)) for name in names}
    return {names[0]: text} if names else {}


def messages_for(program: dict, inputs: dict[str, str]) -> list[dict]:
    """The messages ``program`` sends for these inputs (those it reads; one it lacks is empty): one input through
    the cached renderer, several here (the cache's renderer takes one text)."""
    task = task_of(program)
    own = list(task.input_names) if task is not None else list(inputs)
    if len(own) <= 1:
        text = inputs[own[0]] if own and own[0] in inputs else next(iter(inputs.values()), "")
        return cache.rendered_prompt(json.dumps(program, sort_keys=True), text)
    return render_prompt(program_from_dict(program)[0], {name: inputs.get(name, "") for name in own})


def own_program(program: dict) -> bool:
    """Whether a saved program is your own (its task names a program file): shown from what its run saved, never
    built here."""
    task = program.get("task")
    return isinstance(task, dict) and bool(task.get("program"))


def predictor_instructions(program: dict) -> dict[str, str]:
    """Each predictor's instruction by name, as the run saved it (the studio's own program: its one instruction)."""
    if not own_program(program):
        return {STUDIO: str(program.get("instruction", ""))}
    return {str(name): str(text) for name, text in (program.get("instructions") or {}).items()}


def predictor_prompts(program: dict, inputs: dict[str, str]) -> dict[str, str]:
    """Each predictor's whole prompt by name, as the run saved it, the first predictor's ``{{field}}`` variables
    filled with ``inputs`` (the later ones read what earlier predictors produce: their variables stay). The studio's
    own program: its prompt rendered for ``inputs`` (an empty one as its variable)."""
    if not own_program(program):
        filled = {name: value if value.strip() else "{{" + name + "}}" for name, value in inputs.items()}
        return {STUDIO: prompt_text(messages_for(program, filled))}
    prompts = {str(name): str(text) for name, text in (program.get("prompts") or {}).items()}
    if prompts:
        first = next(iter(prompts))
        for name, value in inputs.items():
            if value.strip():
                prompts[first] = prompts[first].replace("{{" + name + "}}", value)
    return prompts


def _names(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return list(dict.fromkeys([*a, *b]))


def instruction_diffs(before: dict[str, str], after: dict[str, str]) -> None:
    """One word diff per predictor, A to B; a predictor only one side has shows as added or removed."""
    names = _names(before, after)
    changed = [n for n in names if before.get(n) != after.get(n)]
    unchanged = [n for n in names if n not in changed]
    if not changed:
        st.caption(f"From A to B, no predictor's instruction changed ({', '.join(names)}).")
    else:
        st.caption(f"From A to B, {len(changed)} of {len(names)} predictors changed: {', '.join(changed)}"
                   + (f" (unchanged: {', '.join(unchanged)})." if unchanged else "."))
    for name in names:
        st.markdown(f"##### {name}")
        if name not in before or name not in after:
            st.caption("Only in B: added (green)." if name not in before else "Only in A: removed in B (red).")
        else:
            counts = diff_counts(before[name], after[name])
            st.caption(f"{counts['removed']} words removed (red), {counts['added']} added (green)."
                       if name in changed else "Unchanged.")
        st.html(diff_html(before.get(name, ""), after.get(name, "")))
    with st.expander("Both programs' instructions, plain"):
        for name in names:
            st.markdown(f"**{name}**")
            left, right = st.columns(2)
            left.code(before.get(name, "(not in A)"), language=None, wrap_lines=True)
            right.code(after.get(name, "(not in B)"), language=None, wrap_lines=True)


def prompt_diffs(before: dict[str, str], after: dict[str, str], labels: tuple[str, str]) -> None:
    """Each predictor's whole prompt, A and B side by side, and their differences, predictor by predictor."""
    names = _names(before, after)
    if not names:
        st.caption("Neither run saved its predictors' prompts: they ran before runs saved them.")
        return
    side, diff = st.tabs(["Side by side", "Differences"])
    with side:
        for name in names:
            st.markdown(f"##### {name}")
            left, right = st.columns(2)
            for column, prompts, label in ((left, before, labels[0]), (right, after, labels[1])):
                column.caption(label)
                column.code(prompts.get(name, "(no such predictor in this program)"), language=None, wrap_lines=True)
    with diff:
        for name in names:
            st.markdown(f"##### {name}")
            st.html(diff_html(before.get(name, ""), after.get(name, "")))


def show_pair(run_id: str) -> None:
    """Put an optimization's original and optimized evaluations in view as A and B."""
    with studio_errors():
        a, b = linked_evaluations(run_id, cache.run_tags(run_id), runs)
        if a in choices and b in choices:
            st.session_state["prompts.a"], st.session_state["prompts.b"] = a, b


def put_in_view(run_id: str) -> None:
    """The optimization in view (the URL's ``run``, shared with Optimization and Compare) and its pair as A and B."""
    state.set_optimization_run(run_id)
    state.set_prompts_run(run_id)  # kept for links made before Prompts followed ``run``
    show_pair(run_id)
    st.session_state["prompts.shown"] = run_id


if not opts.empty:
    entries = optimization_choices(opts)  # a repeat is one entry ("3 seeds") that opens to its seeds
    in_view = next((r for r in (state.optimization_run(), state.prompts_run()) if entry_of(opts, r)), None)
    if in_view is None:
        newest = latest_optimization(runs)
        in_view = newest if entry_of(opts, newest) else str(opts.iloc[0]["run_id"])
    if "prompts.a" not in st.session_state or st.session_state.get("prompts.shown") != in_view:
        show_pair(in_view)  # a new session, a link or another page put this optimization in view
        st.session_state["prompts.shown"] = in_view
    st.session_state["prompts.opt"] = entry_of(opts, in_view)  # the kept choice is the truth; a pick updates it
    entry = st.selectbox("Optimization", list(entries), key="prompts.opt", format_func=entries.get,
                         help="Its original program is A and its optimized program is B; pick any two programs below.",
                         on_change=lambda: put_in_view(next(iter(seed_choices(opts, st.session_state["prompts.opt"])))))
    if entry.startswith(GROUP):
        seeds = seed_choices(opts, entry)
        st.session_state["prompts.seed"] = in_view if in_view in seeds else next(iter(seeds))
        st.selectbox("Seed", list(seeds), key="prompts.seed", format_func=seeds.get,
                     help="The same optimization with other seeds: each seed's programs are a pair.",
                     on_change=lambda: put_in_view(st.session_state["prompts.seed"]))
for key, fallback in (("prompts.a", ids[min(1, len(ids) - 1)]), ("prompts.b", ids[0])):
    if st.session_state.get(key) not in choices:
        st.session_state[key] = fallback
# One above the other: a program's label (model · program · version · task · time · id) needs the page's width.
picked = []
for key, label in (("prompts.a", "Program A (before)"), ("prompts.b", "Program B (after)")):
    picked.append(st.selectbox(label, ids, format_func=choices.get, key=key))
    with studio_errors():
        st.caption(starting_program(picked[-1]))
a, b = picked

with studio_errors(stop=True):
    program_a, program_b = cache.artifact_json(a, "program.json"), cache.artifact_json(b, "program.json")

own = own_program(program_a) or own_program(program_b)  # your own program: read from what its runs saved
st.subheader("Instruction")
if own:
    instruction_diffs(predictor_instructions(program_a), predictor_instructions(program_b))
else:
    counts = diff_counts(program_a.get("instruction", ""), program_b.get("instruction", ""))
    st.caption(f"From A to B: {counts['removed']} words removed (red), {counts['added']} added (green).")
    st.html(diff_html(program_a.get("instruction", ""), program_b.get("instruction", "")))
    with st.expander("Both instructions, plain"):
        left, right = st.columns(2)
        left.code(program_a.get("instruction", ""), language=None, wrap_lines=True)
        right.code(program_b.get("instruction", ""), language=None, wrap_lines=True)

st.subheader("Full prompt for one example")
task_b = task_of(program_b)
specs = list(task_b.input_specs) if task_b is not None else []
names = [spec.name for spec in specs]
several = len(names) > 1
texts: list[str] = []
try:
    records = cache.artifact_csv(b, "records.csv")
    texts = records["text"].astype(str).head(200).tolist()
except StudioError:
    st.caption("Run B has no saved test examples; type one below.")
options = list(range(len(texts))) + [CUSTOM]
pick = st.selectbox("Example", options, key="prompts.example",
                    format_func=lambda i: "Type my own text…" if i == CUSTOM else
                    f"#{i + 1}: {(readable(texts[i]) if several else texts[i])[:100]}")
if several and pick == CUSTOM:  # one box per input: the prompt shows every field
    inputs = {s.name: st.text_area(s.column, key=f"prompts.text.{s.name}", placeholder=s.description or s.column)
              for s in specs}
else:
    hint = "A sentence to classify" if task_b is None or task_b.is_classification else \
        (specs[0].description or specs[0].column)
    text = st.text_area("Text", key="prompts.text", placeholder=hint) if pick == CUSTOM else texts[pick]
    inputs = inputs_of(text, names or ["text"])

if own:
    filled = any(v.strip() for v in inputs.values())
    with studio_errors(stop=True):
        prompt_diffs(predictor_prompts(program_a, inputs), predictor_prompts(program_b, inputs), (
            f"A: {choices[a]}", f"B: {choices[b]}"))
    st.caption(("The example fills the first predictor's inputs; the later predictors read what earlier ones "
                "produce (outputs known only when the program runs), so their inputs stay {{field}} variables."
                if filled else "Each input is a {{field}} variable: pick an example to fill the first predictor's.")
               + " These are the prompts the runs saved: this page never runs your program's code.")
elif any(v.strip() for v in inputs.values()):
    with studio_errors(stop=True):
        messages_a = messages_for(program_a, inputs)
        messages_b = messages_for(program_b, inputs)
    side, diff = st.tabs(["Side by side", "Differences"])
    with side:
        left, right = st.columns(2)
        for column, messages, title in ((left, messages_a, "A"), (right, messages_b, "B")):
            with column:
                st.markdown(f"**{title}: {choices[a if title == 'A' else b]}**")
                for message in messages:
                    st.caption(message.get("role", "?"))
                    st.code(str(message.get("content", "")), language=None, wrap_lines=True)
    with diff:
        st.html(diff_html(prompt_text(messages_a), prompt_text(messages_b)))

st.subheader("Use it")
row = evals[evals["run_id"] == b].iloc[0]
st.download_button("Download program B (JSON)", json.dumps(program_b, indent=2), key="prompts.download",
                   file_name=(f"program-{row['model'] or 'model'}-{row['program'] or 'program'}-{b[:8]}.json"
                              .replace(" ", "_")),
                   mime="application/json", icon=":material/download:",
                   help="Load it with core.program.program.load_program(path) → (program, task).")
parent = row.get("parent_run_id")
parent = parent if isinstance(parent, str) and parent else None
uri = None
if parent:
    with studio_errors():
        uri = cache.run_tags(parent).get(PROMPT_URI_TAG)
if uri:
    st.markdown(f"Registered in MLflow's prompt registry as `{uri}` (its instruction and demos):")
    with studio_errors():
        st.code(prompt_snippet(uri, program_b), language="python")
else:
    st.caption("Optimized programs are registered in MLflow's prompt registry; program B is not one of them.")

st.markdown("**Ship program B as an MLflow model**")
st.caption("A pyfunc model in MLflow's model registry, linked to its run, its optimization and its prompt version. "
           "It calls program B's model when it predicts: no key is stored in it; set the model's key variable where "
           "it runs.")
model_uri, untested = None, None
with studio_errors():
    model_uri = cache.run_tags(b).get(MODEL_URI_TAG)
    untested = untested_reason(cache.run_store(), b)
if untested:  # the CLI refuses it unless --allow-untested: here, a tick says the same
    st.warning(f"Program B was never tested: {untested}. A registered model should be what was measured.",
               icon=":material/warning:")
    st.checkbox("Register it anyway (the model version is tagged untested)", key=f"prompts.untested.{b}")
if st.button("Register a new model version" if model_uri else "Register as an MLflow model", key="prompts.ship",
             icon=":material/rocket_launch:",
             disabled=bool(untested) and not st.session_state.get(f"prompts.untested.{b}"),
             help="python -m core export RUN_ID does the same from the command line."):
    with studio_errors():
        with st.spinner("Logging and registering the model…"):
            model_uri = export_model(cache.run_store(), b, allow_untested=bool(untested)).uri
        cache.run_tags.clear()
if model_uri:
    with studio_errors():
        shipped = shipped_from_uri(model_uri, b, program_b, optimization_run_id=parent, prompt_uri=uri)
        st.markdown(f"Registered as `{shipped.uri}`.")
        tracking_uri = cache.settings().tracking_uri
        python, serve = st.tabs(["Load it in Python", "Serve it"])
        python.code(load_snippet(shipped, tracking_uri), language="python")
        serve.code(serve_command(shipped, tracking_uri), language="bash", wrap_lines=True)
