"""Models: choose the student, the reflection model and the models to compare; add, check and remove models."""

from dataclasses import asdict, replace

import pandas as pd
import streamlit as st

from core import models as core_models
from core.errors import ModelError
from core.models import MAX_RETRIES, MAX_TIMEOUT_S, PRESETS, PROVIDER_HELP, ModelSpec
from core.settings import PROVIDERS, get_secret
from ui import cache, routing, state
from ui.widgets import key_status, safe_text, show_error, studio_errors

PROVIDER_NAMES = {name: p.title for name, p in PROVIDERS.items()}
TIMEOUT_HELP = "Seconds one call may take before it counts as a timeout."
RETRIES_HELP = "How many times a call that failed transiently (rate limit, server error, timeout) is tried again."


def _index(options: list[str], value: str | None) -> int | None:
    return options.index(value) if value in options else None


routing.require_app(__file__)
st.title("Models")
st.write("Pick a cheap **student** (the model GEPA optimizes), a strong **reflection** model (it rewrites the "
         "student's prompt), and the models to compare in baselines. The catalog is shared by everyone using "
         "this data dir; your choices stay in this browser session.")

if message := state.pop_flash("models"):
    st.success(message, icon=":material/check_circle:")
with studio_errors(stop=True):
    catalog = cache.catalog()
names = catalog.names()

# Roles -------------------------------------------------------------------------------------
st.subheader("Roles")
left, right = st.columns(2)
student = left.selectbox("Student", names, index=_index(names, state.student()), key="models.student.w",
                         placeholder="Pick a cheap model", help="The model whose prompt GEPA optimizes.")
state.set_student(student)
reflection = right.selectbox("Reflection model", names, index=_index(names, state.reflection()),
                             key="models.reflection.w", placeholder="Pick a strong model",
                             help="Reads the student's mistakes and writes a better instruction.")
state.set_reflection(reflection)
compare = st.multiselect("Models to compare (baselines)", names,
                         default=[n for n in state.compare_models() if n in names], key="models.compare.w",
                         placeholder="Pick one or more models")
state.set_compare_models(compare)
if student and student == reflection:
    st.info("The student and the reflection model are the same model: GEPA works best with a stronger reflection model.")

# Catalog -----------------------------------------------------------------------------------
st.subheader("Catalog")
rows = []
for spec in catalog.models.values():
    price = cache.price_of(spec.to_dict())
    key_env = spec.api_key_env
    rows.append({
        "name": spec.name, "model": spec.model, "provider": spec.provider, "base URL": spec.api_base or "",
        "key": "not needed" if not key_env else f"{key_env}: {key_status(get_secret(key_env) is not None)}",
        "input $/1M": price["input_per_m"], "output $/1M": price["output_per_m"], "price from": price["source"],
        "timeout (s)": spec.timeout_s, "retries": spec.num_retries, "preset": spec in PRESETS,
    })
st.dataframe(pd.DataFrame(rows).sort_values("name"), hide_index=True, key="models.catalog.table",
             column_config={"input $/1M": st.column_config.NumberColumn(format="$%.4f"),
                            "output $/1M": st.column_config.NumberColumn(format="$%.4f")})
st.caption("Prices are USD per 1M tokens: yours if set, else LiteLLM's bundled map, else 0 for local servers. "
           "Cost is always tokens really used × price.")

# Check a connection -------------------------------------------------------------------------
st.subheader("Test a connection")
check_cols = st.columns([3, 1], vertical_alignment="bottom")
to_check = check_cols[0].selectbox("Model", names, index=_index(names, student) or 0, key="models.check.name")
if check_cols[1].button("Test connection", key="models.check", icon=":material/network_check:"):
    with st.spinner(f"Calling {to_check}…"):
        result = core_models.check_connection(catalog.get(to_check))
    state.set_last_check({"model": to_check, **asdict(result)})
checked = state.last_check()
if checked:
    if checked["ok"]:
        st.success(f"{checked['model']}: answered in {checked['latency_s']:.2f} s — “{checked['sample']}”", icon=":material/check_circle:")
    else:
        st.error(safe_text(f"{checked['model']}: {checked['kind'] or 'error'} — {checked['message']}"),
                 icon=":material/error:")
        if checked["hint"]:
            st.caption(checked["hint"])

# Add a model --------------------------------------------------------------------------------
st.subheader("Add a model")
provider = st.segmented_control("Provider", list(PROVIDERS), format_func=PROVIDER_NAMES.get, default="openai-compatible",
                                key="models.add.provider", required=True)
st.caption(PROVIDER_HELP[provider])
with st.form("models.add.form", border=True):
    cols = st.columns(2)
    name = cols[0].text_input("Display name", key="models.add.name", placeholder="e.g. llama3.1 (local)")
    if provider == "openai-compatible":
        model_id = cols[1].text_input("Model id on the server", key="models.add.model", placeholder="e.g. llama3.1")
        api_base = st.text_input("Base URL", value="http://localhost:11434/v1", key="models.add.api_base")
        key_env = st.text_input("Key variable (optional)", key="models.add.key_env",
                                help="Name of the environment variable with the server's key, if it needs one.")
    else:
        model_id = cols[1].text_input("Model string", value=f"{provider}/", key="models.add.model",
                                      help="provider/model, as LiteLLM writes it")
        api_base = st.text_input("Base URL (optional)", key="models.add.api_base")
        key_env = st.text_input("Key variable", value=PROVIDERS[provider].key_env, key="models.add.key_env",
                                help="The name of the variable, never the key itself.")
    price_cols = st.columns(2)
    price_in = price_cols[0].number_input("Input price, $ per 1M tokens", min_value=0.0, value=None, step=0.01,
                                          key="models.add.price_in", placeholder="from LiteLLM (0 for local)")
    price_out = price_cols[1].number_input("Output price, $ per 1M tokens", min_value=0.0, value=None, step=0.01,
                                           key="models.add.price_out", placeholder="from LiteLLM (0 for local)")
    gen = st.columns(4)
    temperature = gen[0].number_input("Temperature", min_value=0.0, max_value=2.0, value=None, step=0.1,
                                      key="models.add.temperature", placeholder="provider default")
    max_tokens = gen[1].number_input("Max tokens", min_value=1, value=None, step=256, key="models.add.max_tokens",
                                     placeholder="provider default")
    timeout_s = gen[2].number_input("Timeout (s)", min_value=1.0, max_value=MAX_TIMEOUT_S, value=120.0, step=10.0,
                                    key="models.add.timeout", help=TIMEOUT_HELP)
    retries = gen[3].number_input("Retries", min_value=0, max_value=MAX_RETRIES, value=2, step=1,
                                  key="models.add.retries", help=RETRIES_HELP)
    submitted = st.form_submit_button("Add to catalog", key="models.add.submit", type="primary")
if submitted:
    try:
        if not model_id.strip():
            raise ModelError("Give the model's id or string.", "E.g. llama3.1 on a local server, openai/gpt-4o-mini.")
        common = dict(api_key_env=key_env.strip() or None, input_price_per_m=price_in, output_price_per_m=price_out,
                      temperature=temperature, max_tokens=int(max_tokens) if max_tokens else None, timeout_s=timeout_s,
                      num_retries=int(retries))
        if provider == "openai-compatible":
            spec = core_models.openai_compatible(name.strip(), model_id.strip(), api_base.strip(), **common)
        else:
            spec = ModelSpec(name=name.strip(), model=model_id.strip(), provider=provider,
                             api_base=api_base.strip() or None, **common)
        catalog.add(spec)
        catalog.save()
        state.flash("models", f"Added {spec.name} ({spec.model}) to the catalog.")
        st.rerun()
    except ModelError as exc:
        show_error(exc)

# Timeout and retries of a model in the catalog ---------------------------------------------------
st.subheader("Timeout and retries")
limit_cols = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
to_edit = limit_cols[0].selectbox("Model", names, index=_index(names, student) or 0, key="models.limits.name")
edited = catalog.models[to_edit]
# Keys carry the model's name: picking another model shows its own values, not the last one's.
new_timeout = limit_cols[1].number_input("Timeout (s)", min_value=1.0, max_value=MAX_TIMEOUT_S, step=10.0,
                                         value=float(edited.timeout_s), key=f"models.limits.timeout.{to_edit}",
                                         help=TIMEOUT_HELP)
new_retries = limit_cols[2].number_input("Retries", min_value=0, max_value=MAX_RETRIES, step=1,
                                         value=int(edited.num_retries), key=f"models.limits.retries.{to_edit}",
                                         help=RETRIES_HELP)
if limit_cols[3].button("Save", key="models.limits.save", icon=":material/save:"):
    with studio_errors():
        catalog.add(replace(edited, timeout_s=float(new_timeout), num_retries=int(new_retries)))
        catalog.save()
        state.flash("models", f"{to_edit}: timeout {new_timeout:g} s, {int(new_retries)} retries.")
        st.rerun()

# Local servers -------------------------------------------------------------------------------
with st.expander("Find models on a local server (Ollama, vLLM, llama.cpp, LM Studio)"):
    scan_cols = st.columns([3, 1], vertical_alignment="bottom")
    server = scan_cols[0].text_input("Server base URL", value="http://localhost:11434/v1", key="models.scan.base")
    scan = scan_cols[1].button("List its models", key="models.scan")
    if st.button("Detect a running Ollama", key="models.ollama", icon=":material/search:"):
        found = core_models.detect_ollama()
        state.set_found_models([s.to_dict() for s in found])
        if not found:
            st.info("No Ollama answered on 127.0.0.1:11434. Start it with `ollama serve`, or give a server's URL above.")
    if scan:
        with studio_errors():
            ids = core_models.list_server_models(server.strip())
            base = server.strip().rstrip("/")
            state.set_found_models([core_models.openai_compatible(f"{i} (local)", i, base).to_dict() for i in ids])
            if not ids:
                st.info(f"{server} answered but lists no models.")
    found_specs = state.found_models()
    if found_specs:
        st.dataframe(pd.DataFrame([{"name": d["name"], "model": d["model"], "base URL": d["api_base"]}
                                   for d in found_specs]), hide_index=True)
        if st.button(f"Add these {len(found_specs)} models", key="models.found.add", type="primary"):
            with studio_errors():
                for d in found_specs:
                    catalog.add(ModelSpec.from_dict(d))
                catalog.save()
                state.set_found_models([])
                state.flash("models", f"Added {len(found_specs)} models to the catalog.")
                st.rerun()

# Remove -------------------------------------------------------------------------------------
custom = [n for n, s in sorted(catalog.models.items()) if s not in PRESETS]
if custom:
    with st.expander("Remove a model you added"):
        gone = st.selectbox("Model", custom, key="models.remove.name")
        if st.button("Remove", key="models.remove"):
            with studio_errors():
                catalog.remove(gone)
                catalog.save()
                state.flash("models", f"Removed {gone}.")
                st.rerun()

with st.expander("Where do keys go?"):
    for prov in PROVIDERS:
        st.markdown(f"**{PROVIDER_NAMES[prov]}**: {PROVIDER_HELP[prov]}")
    st.caption("Put keys in the environment or in `.streamlit/secrets.toml` (see `.streamlit/secrets.toml.example`). "
               "The catalog stores only the variable's name.")
