"""Prompts: two programs' instructions and full prompts side by side, with the differences highlighted."""

import json

import streamlit as st

from core.analytics.diff import diff_counts, diff_html
from core.errors import StudioError
from core.program import prompt_text
from core.runs import EVAL_KINDS, PROMPT_URI_TAG, latest_optimization, linked_evaluations, run_choices
from ui import cache, routing
from ui.widgets import studio_errors

CUSTOM = -1

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

choices = run_choices(evals)
ids = list(choices)
default_a, default_b = None, None
with studio_errors():
    if latest := latest_optimization(runs):
        default_a, default_b = linked_evaluations(latest, cache.run_tags(latest), runs)
default_a = default_a if default_a in choices else ids[min(1, len(ids) - 1)]
default_b = default_b if default_b in choices else ids[0]
cols = st.columns(2)
a = cols[0].selectbox("Program A (before)", ids, index=ids.index(default_a), format_func=choices.get, key="prompts.a")
b = cols[1].selectbox("Program B (after)", ids, index=ids.index(default_b), format_func=choices.get, key="prompts.b")

with studio_errors(stop=True):
    program_a, program_b = cache.artifact_json(a, "program.json"), cache.artifact_json(b, "program.json")

st.subheader("Instruction")
counts = diff_counts(program_a.get("instruction", ""), program_b.get("instruction", ""))
st.caption(f"From A to B: {counts['removed']} words removed (red), {counts['added']} added (green).")
st.html(diff_html(program_a.get("instruction", ""), program_b.get("instruction", "")))
with st.expander("Both instructions, plain"):
    left, right = st.columns(2)
    left.code(program_a.get("instruction", ""), language=None, wrap_lines=True)
    right.code(program_b.get("instruction", ""), language=None, wrap_lines=True)

st.subheader("Full prompt for one example")
texts: list[str] = []
try:
    records = cache.artifact_csv(b, "records.csv")
    texts = records["text"].astype(str).head(200).tolist()
except StudioError:
    st.caption("Run B has no saved test examples; type one below.")
options = list(range(len(texts))) + [CUSTOM]
pick = st.selectbox("Example", options, key="prompts.example",
                    format_func=lambda i: "Type my own text…" if i == CUSTOM else f"#{i + 1}: {texts[i][:100]}")
text = st.text_area("Text", key="prompts.text", placeholder="A sentence to classify") if pick == CUSTOM else texts[pick]

if text.strip():
    with studio_errors(stop=True):
        messages_a = cache.rendered_prompt(json.dumps(program_a, sort_keys=True), text)
        messages_b = cache.rendered_prompt(json.dumps(program_b, sort_keys=True), text)
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
                   file_name=f"program-{row['model'] or 'model'}-{row['program'] or 'program'}-{b[:8]}.json".replace(" ", "_"),
                   mime="application/json", icon=":material/download:",
                   help="Load it with core.program.load_program(path) → (program, task).")
parent = row.get("parent_run_id")
uri = None
if isinstance(parent, str) and parent:
    with studio_errors():
        uri = cache.run_tags(parent).get(PROMPT_URI_TAG)
if uri:
    st.markdown(f"Registered in MLflow's prompt registry as `{uri}`:")
    st.code(f'import mlflow\nprompt = mlflow.genai.load_prompt("{uri}")\nprint(prompt.template)', language="python")
else:
    st.caption("Optimized instructions are registered in MLflow's prompt registry; program B is not one of them.")
