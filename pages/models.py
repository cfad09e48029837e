"""Models: choose the student, the reflection model and the models to compare; add, edit, check and remove models."""

from dataclasses import asdict
from typing import Any

import pandas as pd
import streamlit as st

from core.config.errors import ModelError
from core.config.settings import PROVIDERS, secrets_problem
from core.lm import models as core_models
from core.lm.models import MAX_RETRIES, MAX_TIMEOUT_S, PROVIDER_HELP, ModelSpec, key_present
from ui import cache, routing, state
from ui.catalog import LINK_COLUMNS, PRESET_NAMES, PRICE_COLUMNS, PROVIDER_NAMES, catalog_frame, limits_text
from ui.widgets import safe_text, show_error, studio_errors

TIMEOUT_HELP = "Seconds one call may take before it counts as a timeout."
RETRIES_HELP = "How many times a call that failed transiently (rate limit, server error, timeout) is tried again."
PRICE_HELP = "USD per 1M tokens. Leave empty to use LiteLLM's price (0 for a local server)."
LIMIT_HELP = ("The provider's limit for this key; all jobs on this machine or cluster share it (calls wait their turn "
              "instead of meeting 429s). Leave empty for no limit.")
LOCAL_BASE = "http://localhost:11434/v1"
ROLE_WIDGETS = ("models.student.w", "models.reflection.w", "models.compare.w")
# Page-only keys: the add form's widgets, a duplicate waiting for "Replace", the model whose values the edit form holds.
ADD = {f: f"models.add.{f}" for f in ("name", "model", "api_base", "key_env", "price_in", "price_out", "temperature",
                                      "max_tokens", "timeout", "retries", "rpm", "tpm")}
ADD_FOR = "models.add.for_provider"  # the provider the add form's provider-dependent defaults were set for
ADD_RESET = "models.add.reset"  # bool: give the add form its defaults on the next run (after an add)
PENDING = "models.add.pending"  # dict: a ModelSpec whose name is taken, waiting for "Replace" or "Cancel"
EDIT = {f: f"models.edit.{f}"
        for f in ("name", "api_base", "price_in", "price_out", "timeout", "retries", "rpm", "tpm")}
EDIT_PICK = "models.edit.pick"  # the model picked for editing
EDIT_NEXT = "models.edit.next"  # str: pick this model on the next run (after a copy or a rename)
EDIT_LOADED = "models.edit.loaded"  # str: the model whose values the edit form's widgets hold


def _index(options: list[str], value: str | None) -> int | None:
    return options.index(value) if value in options else None


def _confirm(section: str) -> None:
    """The message of what a section just did, under it and as a toast: seen wherever the page is scrolled."""
    if message := state.pop_flash(section):
        st.success(message, icon=":material/check_circle:")
        st.toast(message, icon=":material/check_circle:")


def _forget_check(*names: str) -> None:
    """Drop the shown connection result of a model that was removed or changed: it no longer describes it."""
    checked = state.last_check()
    if checked and checked.get("model") in names:
        state.set_last_check(None)


def _follow_rename(old: str, new: str) -> None:
    """A renamed model keeps its roles; the role widgets pick the new name up on the next run."""
    if state.student() == old:
        state.set_student(new)
    if state.reflection() == old:
        state.set_reflection(new)
    state.set_compare_models([new if n == old else n for n in state.compare_models()])
    for key in ROLE_WIDGETS:
        st.session_state.pop(key, None)


def _add_defaults(provider: str) -> dict[str, Any]:
    local = provider == "openai-compatible"
    return {ADD["name"]: "", ADD["model"]: "" if local else f"{provider}/",
            ADD["api_base"]: LOCAL_BASE if local else "", ADD["key_env"]: PROVIDERS[provider].key_env or "",
            ADD["price_in"]: None, ADD["price_out"]: None, ADD["temperature"]: None, ADD["max_tokens"]: None,
            ADD["timeout"]: 120.0, ADD["retries"]: 2, ADD["rpm"]: None, ADD["tpm"]: None}


def _prepare_add_form(provider: str) -> None:
    """Defaults for a fresh form (after an add, nothing is inherited); a new provider brings its own."""
    defaults = _add_defaults(provider)
    if st.session_state.pop(ADD_RESET, False):
        st.session_state.update(defaults)
    elif st.session_state.get(ADD_FOR) != provider:
        st.session_state.update({ADD[k]: defaults[ADD[k]] for k in ("model", "api_base", "key_env")})
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    st.session_state[ADD_FOR] = provider


def _prepare_edit_form(spec: ModelSpec) -> None:
    """Put ``spec``'s values in the edit form when another model is picked (or the page was left)."""
    if st.session_state.get(EDIT_LOADED) == spec.name and all(k in st.session_state for k in EDIT.values()):
        return
    st.session_state.update({EDIT["name"]: spec.name, EDIT["api_base"]: spec.api_base or "",
                             EDIT["price_in"]: spec.input_price_per_m, EDIT["price_out"]: spec.output_price_per_m,
                             EDIT["timeout"]: float(spec.timeout_s), EDIT["retries"]: int(spec.num_retries),
                             EDIT["rpm"]: spec.rpm, EDIT["tpm"]: spec.tpm})
    st.session_state[EDIT_LOADED] = spec.name


def _key_present(name: str) -> bool | None:
    """Will the model find its credentials now (None: it needs none, or is gone)? Never the value."""
    return key_present(catalog.models[name]) if name in catalog.models and catalog.models[name].api_key_env else None


routing.require_app(__file__)
st.title("Models")
st.write("Pick a cheap **student** (the model GEPA optimizes), a strong **reflection** model (it rewrites the "
         "student's prompt), and the models to compare in baselines. The catalog is shared by everyone using "
         "this data dir; the roles you pick are yours alone.")

if secrets_error := secrets_problem():  # keys in a malformed secrets file would all show as "not set"
    show_error(secrets_error)
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
    st.info("The student and the reflection model are the same model: GEPA works best with a stronger reflection "
            "model.")

# Catalog -----------------------------------------------------------------------------------
st.subheader("Catalog")
table = catalog_frame(catalog)
money = st.column_config.NumberColumn(format="$%g")
prices_tab, links_tab = st.tabs(["Prices and keys", "Connections and limits"])
prices_tab.dataframe(table[PRICE_COLUMNS], hide_index=True, key="models.catalog.prices",
                     column_config={"name": st.column_config.TextColumn(pinned=True), "input $/1M": money,
                                    "output $/1M": money})
links_tab.dataframe(table[LINK_COLUMNS], hide_index=True, key="models.catalog.links",
                    column_config={"name": st.column_config.TextColumn(pinned=True, width=195),
                                   "model": st.column_config.TextColumn(width=215),
                                   "server": st.column_config.TextColumn(width=165),
                                   "timeout": st.column_config.NumberColumn(format="%g s", width=60),
                                   "retries": st.column_config.NumberColumn(width=52),
                                   "limit / min": st.column_config.TextColumn(width=125, help=LIMIT_HELP)})
st.caption("Your models first, then the presets. Prices are USD per 1M tokens: yours if set, else LiteLLM's bundled "
           "map, else 0 for local servers. Cost is always tokens really used × price.")

# Check a connection -------------------------------------------------------------------------
st.subheader("Test a connection")
check_cols = st.columns([3, 1], vertical_alignment="bottom")
to_check = check_cols[0].selectbox("Model", names, index=_index(names, student) or 0, key="models.check.name")
if check_cols[1].button("Test connection", key="models.check", icon=":material/network_check:"):
    with st.spinner(f"Calling {to_check}…"):
        result = core_models.check_connection(catalog.get(to_check))
    state.set_last_check({"model": to_check, **asdict(result), "key_present": _key_present(to_check)})
checked = state.last_check()
if checked and checked.get("key_present") != _key_present(checked["model"]):  # its key was set (or removed) since
    checked = None
    state.set_last_check(None)
if checked:
    if checked["ok"]:
        st.success(f"{checked['model']}: answered in {checked['latency_s']:.2f} s — “{checked['sample']}”",
                   icon=":material/check_circle:")
    else:
        st.error(safe_text(f"{checked['model']}: {checked['kind'] or 'error'} — {checked['message']}"),
                 icon=":material/error:")
        if checked["hint"]:
            st.caption(checked["hint"])

# Add a model --------------------------------------------------------------------------------
st.subheader("Add a model")
provider = st.segmented_control("Provider", list(PROVIDERS), format_func=PROVIDER_NAMES.get,
                                default="openai-compatible", key="models.add.provider", required=True)
st.caption(PROVIDER_HELP[provider])
_prepare_add_form(provider)
with st.form("models.add.form", border=True):
    cols = st.columns(2)
    name = cols[0].text_input("Display name", key=ADD["name"], placeholder="e.g. llama3.1 (local)")
    if provider == "openai-compatible":
        model_id = cols[1].text_input("Model id on the server", key=ADD["model"], placeholder="e.g. llama3.1")
        api_base = st.text_input("Base URL", key=ADD["api_base"])
        key_env = st.text_input("Key variable (optional)", key=ADD["key_env"],
                                help="Name of the environment variable with the server's key, if it needs one.")
    else:
        model_id = cols[1].text_input("Model string", key=ADD["model"], help="provider/model, as LiteLLM writes it")
        api_base = st.text_input("Base URL (optional)", key=ADD["api_base"])
        key_env = st.text_input("Key variable", key=ADD["key_env"],
                                help="The name of the variable, never the key itself.")
    price_cols = st.columns(2)
    price_in = price_cols[0].number_input("Input price, $ per 1M tokens", min_value=0.0, value=None, step=0.01,
                                          format="%.4f", key=ADD["price_in"], placeholder="from LiteLLM (0 for local)")
    price_out = price_cols[1].number_input("Output price, $ per 1M tokens", min_value=0.0, value=None, step=0.01,
                                           format="%.4f", key=ADD["price_out"],
                                           placeholder="from LiteLLM (0 for local)")
    gen = st.columns(4)
    temperature = gen[0].number_input("Temperature", min_value=0.0, max_value=2.0, value=None, step=0.1,
                                      key=ADD["temperature"], placeholder="provider default")
    max_tokens = gen[1].number_input("Max tokens", min_value=1, value=None, step=256, key=ADD["max_tokens"],
                                     placeholder="provider default")
    timeout_s = gen[2].number_input("Timeout (s)", min_value=1.0, max_value=MAX_TIMEOUT_S, step=10.0,
                                    key=ADD["timeout"], help=TIMEOUT_HELP)
    retries = gen[3].number_input("Retries", min_value=0, max_value=MAX_RETRIES, step=1, key=ADD["retries"],
                                  help=RETRIES_HELP)
    lim = st.columns(2)
    rpm = lim[0].number_input("Requests / min", min_value=1, value=None, step=60, key=ADD["rpm"],
                              placeholder="no limit", help=LIMIT_HELP)
    tpm = lim[1].number_input("Tokens / min", min_value=1, value=None, step=10_000, key=ADD["tpm"],
                              placeholder="no limit", help=LIMIT_HELP)
    submitted = st.form_submit_button("Add to catalog", key="models.add.submit", type="primary")
if submitted:
    st.session_state.pop(PENDING, None)
    try:
        if not model_id.strip():
            raise ModelError("Give the model's id or string.", "E.g. llama3.1 on a local server, openai/gpt-4o-mini.")
        common = dict(api_key_env=key_env.strip() or None, input_price_per_m=price_in, output_price_per_m=price_out,
                      temperature=temperature, max_tokens=int(max_tokens) if max_tokens else None, timeout_s=timeout_s,
                      num_retries=int(retries), rpm=int(rpm) if rpm else None, tpm=int(tpm) if tpm else None)
        if provider == "openai-compatible":
            spec = core_models.openai_compatible(name.strip(), model_id.strip(), api_base.strip(), **common)
        else:
            spec = ModelSpec(name=name.strip(), model=model_id.strip(), provider=provider,
                             api_base=api_base.strip() or None, **common)
        if spec.name in catalog.models:
            st.session_state[PENDING] = spec.to_dict()  # asked below: never overwritten silently
        else:
            catalog.add(spec)
            catalog.save()
            st.session_state[ADD_RESET] = True
            state.flash("models.add", f"Added {spec.name} ({spec.model}) to the catalog.")
            st.rerun()
    except ModelError as exc:
        show_error(exc)
if pending := st.session_state.get(PENDING):
    taken = catalog.models.get(pending["name"])
    if taken is None:  # removed meanwhile (another session): nothing to replace any more
        st.session_state.pop(PENDING)
    else:
        where = f" at {taken.api_base}" if taken.api_base else ""
        st.warning(f"A model named **{taken.name}** is already in the catalog ({taken.model}{where}"
                   f"{', a preset' if not catalog.is_own(taken.name) else ''}). Replace it with the one you entered "
                   "(its roles stay), or change the display name and add again.", icon=":material/warning:")
        ask = st.columns([1, 1, 4])
        if ask[0].button(f"Replace {taken.name}", key="models.add.replace", type="primary"):
            with studio_errors():
                spec = ModelSpec.from_dict(pending)
                catalog.add(spec, replace=True)
                catalog.save()
                _forget_check(spec.name)
                st.session_state.pop(PENDING)
                st.session_state[ADD_RESET] = True
                state.flash("models.add", f"Replaced {spec.name}: now {spec.model}.")
                st.rerun()
        if ask[1].button("Cancel", key="models.add.cancel"):
            st.session_state.pop(PENDING)
            st.rerun()
_confirm("models.add")

# Edit a model -------------------------------------------------------------------------------
st.subheader("Edit a model")
if (next_pick := st.session_state.pop(EDIT_NEXT, None)) in names:
    st.session_state[EDIT_PICK] = next_pick
to_edit = st.selectbox("Model", names, key=EDIT_PICK, format_func=lambda n: n if catalog.is_own(n) else f"{n} · preset",
                       help="Your models first; presets are read-only (copy one to change it).")
edited = catalog.models[to_edit]
if not catalog.is_own(to_edit):
    copy_cols = st.columns([3, 1], vertical_alignment="center")
    copy_cols[0].caption(f"{to_edit} is a preset and read-only. Copy it to your models to change its price, timeout "
                         "or base URL; the copy gets its own name, which you can change too.")
    if copy_cols[1].button("Copy to my models", key="models.edit.copy", icon=":material/content_copy:"):
        with studio_errors():
            copy = catalog.copy(to_edit)
            catalog.save()
            st.session_state[EDIT_NEXT] = copy.name
            state.flash("models.edit", f"Copied {to_edit} to your models as {copy.name}: edit it here.")
            st.rerun()
    _confirm("models.edit")
else:
    _prepare_edit_form(edited)
    with st.form("models.edit.form", border=True):
        cols = st.columns(2)
        new_name = cols[0].text_input("Display name", key=EDIT["name"],
                                      help="Roles that use this model follow a rename.")
        new_base = cols[1].text_input("Base URL" + ("" if edited.is_local else " (optional)"), key=EDIT["api_base"])
        cols = st.columns(4)
        new_in = cols[0].number_input("Input price, $ per 1M", min_value=0.0, value=None, step=0.01, format="%.4f",
                                      key=EDIT["price_in"], placeholder="from LiteLLM", help=PRICE_HELP)
        new_out = cols[1].number_input("Output price, $ per 1M", min_value=0.0, value=None, step=0.01, format="%.4f",
                                       key=EDIT["price_out"], placeholder="from LiteLLM", help=PRICE_HELP)
        new_timeout = cols[2].number_input("Timeout (s)", min_value=1.0, max_value=MAX_TIMEOUT_S, step=10.0,
                                           key=EDIT["timeout"], help=TIMEOUT_HELP)
        new_retries = cols[3].number_input("Retries", min_value=0, max_value=MAX_RETRIES, step=1, key=EDIT["retries"],
                                           help=RETRIES_HELP)
        cols = st.columns(2)
        new_rpm = cols[0].number_input("Requests / min", min_value=1, value=None, step=60, key=EDIT["rpm"],
                                       placeholder="no limit", help=LIMIT_HELP)
        new_tpm = cols[1].number_input("Tokens / min", min_value=1, value=None, step=10_000, key=EDIT["tpm"],
                                       placeholder="no limit", help=LIMIT_HELP)
        save = st.form_submit_button("Save changes", key="models.edit.save", type="primary", icon=":material/save:")
    if save:
        with studio_errors():
            spec = catalog.update(to_edit, name=new_name.strip(), api_base=new_base.strip() or None,
                                  input_price_per_m=new_in, output_price_per_m=new_out, timeout_s=float(new_timeout),
                                  num_retries=int(new_retries), rpm=int(new_rpm) if new_rpm else None,
                                  tpm=int(new_tpm) if new_tpm else None)
            catalog.save()
            _forget_check(to_edit, spec.name)
            if spec.name != to_edit:
                _follow_rename(to_edit, spec.name)
                st.session_state[EDIT_NEXT] = spec.name
            st.session_state.pop(EDIT_LOADED, None)  # show what was saved
            price = cache.price_of(spec.to_dict())
            shown = "unknown price" if price["input_per_m"] is None or price["output_per_m"] is None else \
                f"${price['input_per_m']:g} / ${price['output_per_m']:g} per 1M tokens"
            state.flash("models.edit", f"Saved {spec.name}: {shown}, timeout {spec.timeout_s:g} s, "
                        f"{spec.num_retries} retries" + (f", {spec.api_base}" if spec.api_base else "")
                        + (f", at most {limits_text(spec)} a minute" if spec.rpm or spec.tpm else "") + ".")
            st.rerun()
    _confirm("models.edit")
    overrides = to_edit in PRESET_NAMES
    if st.button("Back to the preset" if overrides else f"Remove {to_edit}", key="models.edit.remove",
                 icon=":material/undo:" if overrides else ":material/delete:"):
        with studio_errors():
            catalog.remove(to_edit)
            catalog.save()
            _forget_check(to_edit)
            st.session_state.pop(EDIT_LOADED, None)
            state.flash("models.edit", f"{to_edit} is the preset again." if overrides else f"Removed {to_edit}.")
            st.rerun()

# Local servers -------------------------------------------------------------------------------
with st.expander("Find models on a local server (Ollama, vLLM, llama.cpp, LM Studio)"):
    scan_cols = st.columns([3, 1], vertical_alignment="bottom")
    server = scan_cols[0].text_input("Server base URL", value=LOCAL_BASE, key="models.scan.base")
    scan = scan_cols[1].button("List its models", key="models.scan")
    if st.button("Detect a running Ollama", key="models.ollama", icon=":material/search:"):
        found = core_models.detect_ollama()
        state.set_found_models([s.to_dict() for s in found])
        if not found:
            st.info("No Ollama answered on 127.0.0.1:11434. Start it with `ollama serve`, or give a server's URL "
                    "above.")
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
        new_specs = [d for d in found_specs if d["name"] not in catalog.models]
        if st.button(f"Add these {len(found_specs)} models", key="models.found.add", type="primary"):
            with studio_errors():
                for d in new_specs:
                    catalog.add(ModelSpec.from_dict(d))
                catalog.save()
                state.set_found_models([])
                kept = len(found_specs) - len(new_specs)
                state.flash("models.found", f"Added {len(new_specs)} models to the catalog"
                            + (f"; {kept} already there, kept as they were." if kept else "."))
                st.rerun()
    _confirm("models.found")

with st.expander("Where do keys go?"):
    for prov in PROVIDERS:
        st.markdown(f"**{PROVIDER_NAMES[prov]}**: {PROVIDER_HELP[prov]}")
    st.caption("Put keys in the environment or in `.streamlit/secrets.toml` (see `.streamlit/secrets.toml.example`). "
               "The catalog stores only the variable's name.")
