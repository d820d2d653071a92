"""webshop: the catalog, search, page rules with their exact error types, and episodes scored with
WebShop's reward, on hand-written trajectories whose rewards are computed by hand below."""

from __future__ import annotations

import json

import pytest

from toolbench.core.calls import PythonFormat
from toolbench.core.episode import Episode, ReplayPolicy, run_episode
from toolbench.core.executor import execute
from toolbench.core.score import Scorer
from toolbench.core.task_files import load_tasks, verify_tasks
from toolbench.foundation.errors import CallParseError, UserError
from toolbench.foundation.records import Task
from toolbench.tools.webshop import PRODUCTS, TOOL, WebShop
from toolbench.tools.webshop.make_catalog import build_products
from toolbench.tools.webshop.simulator import BY_ID, INDEX

PY = PythonFormat(TOOL.format_context())

# The target: B059HRQMXJ "Alder & Co Lightweight Arch Support Men's Running Shoe", $69.99,
# features lightweight / arch support / memory foam, sizes 7-13, colors black / gray / navy.
SHOE = "B059HRQMXJ"
QUERY = "lightweight memory foam men's running shoe"
GOAL = {
    "category": "fashion",
    "product_type": "men's running shoe",
    "attributes": ["lightweight", "memory foam"],
    "options": {"size": "12", "color": "navy"},
    "price_max": 70,
}
GOLD = f'''API.search("{QUERY}")
API.click("{SHOE}")
API.select_option("size", "12")
API.select_option("color", "navy")
API.buy()'''
TASK = Task(
    id="webshop-t1",
    tool="webshop",
    category="episode",
    query="I need a lightweight men's running shoe with memory foam, size 12, navy, under $70.",
    labels=[PY.parse(GOLD)],
    setup={"webshop": {"goal": GOAL}},
)


def play(text: str, task: Task = TASK):
    return Scorer().score(task, PY.parse(text))


# ------------------------------------------------------------------------- catalog


def test_catalog_is_the_seeded_script_output_and_big_enough():
    assert PRODUCTS == build_products()  # catalog.json is exactly what make_catalog.py writes
    assert len(PRODUCTS) == 1200 and len(BY_ID) == 1200
    assert {p["category"] for p in PRODUCTS} == {"fashion", "beauty", "grocery", "electronics", "home"}
    for product in PRODUCTS:
        assert product["options"] and all(product["options"].values())
        assert len(product["attributes"]) == 3 and 0 < product["price"] < 200
    assert BY_ID[SHOE]["price"] == 69.99
    assert BY_ID[SHOE]["options"] == {
        "size": ["7", "8", "9", "10", "11", "12", "13"],
        "color": ["black", "gray", "navy"],
    }


def test_search_is_deterministic_bm25_with_five_pages_at_most():
    first = INDEX.search(QUERY)
    assert first[:3] == ("B0J7T63CWN", "B09296BUJS", "B0943PDV4K")  # pinned: same pages everywhere
    assert first.index(SHOE) == 7 and len(first) == 50
    assert INDEX.search(QUERY.upper() + " shoe") == first  # case and repeated words do not matter
    assert INDEX.search("zebra") == ()


def test_pages_as_text():
    sim = WebShop()
    assert sim.observe(None, None) == "WebShop search page: search(query) to find products."
    page = sim.search(QUERY)
    text = sim.observe(None, page).splitlines()
    assert text[0] == f'Results for "{QUERY}" (page 1 of 5, 50 products):'
    assert text[8] == f"[{SHOE}] Alder & Co Lightweight Arch Support Men's Running Shoe - $69.99"
    assert len(text) == 11
    product = sim.click("alder & co lightweight arch support men's running shoe")  # a title works too
    assert sim.observe(None, sim.select_option("Size", "12")).splitlines() == [
        f"[{SHOE}] Alder & Co Lightweight Arch Support Men's Running Shoe",
        "Price: $69.99",
        "Category: fashion > men's running shoe",
        "Features: lightweight, arch support, memory foam",
        "Options: size: 7, 8, 9, 10, 11, 12, 13 | color: black, gray, navy",
        "Selected: size=12",
    ]
    assert product["selected"] == {}
    assert sim.observe(None, sim.search("zebra")) == 'No products match "zebra". Try another search.'


def test_back_and_next_page_walk_the_history():
    sim = WebShop()
    sim.search(QUERY)
    assert sim.next_page()["page"] == 2
    sim.click(INDEX.search(QUERY)[12])
    assert sim.back()["page"] == 2 and sim.state()["page"] == "results"
    assert sim.back()["page"] == 1
    sim.back()
    assert sim.state() == {"page": "search", "item": None, "selected": {}, "purchased": None}


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("text", "error_type", "fragment"),
    [
        ("API.buy()", "webshop:no_product", "open a product first"),
        ('API.select_option("size", "12")', "webshop:no_product", "this is the search page"),
        (f'API.click("{SHOE}")', "webshop:not_on_results", "click needs a results page"),
        ("API.next_page()", "webshop:not_on_results", "next_page needs a results page"),
        ("API.back()", "webshop:no_history", "no previous page"),
        (f'API.search("{QUERY}")\nAPI.click("B0RJW5MK9S")', "webshop:not_found", "not on this results page"),
        (f'API.search("{QUERY}")\nAPI.click("{SHOE}")\nAPI.select_option("flavor", "mocha")', "webshop:no_such_option", "its options: size, color"),
        (f'API.search("{QUERY}")\nAPI.click("{SHOE}")\nAPI.select_option("size", "14")', "webshop:invalid_option", "choose one of: 7, 8"),
        (f'API.search("{QUERY}")\nAPI.click("{SHOE}")\nAPI.select_option("size", "12")\nAPI.buy()', "webshop:options_missing", "choose the color"),
        (f'API.search("{QUERY}")\nAPI.click("{SHOE}")\nAPI.next_page()', "webshop:not_on_results", "this is the item page"),
        ('API.search("zebra")\nAPI.next_page()', "webshop:no_more_results", "page 1 is the last"),
        (GOLD + "\nAPI.back()", "webshop:done", "the episode is over"),
        ('API.search("")', "schema:minLength", "should be non-empty"),
        ('API.select_option("size", 12)', "schema:type", "12 is not of type 'string'"),
    ],
)  # fmt: skip
def test_rules_give_exact_error_types(text, error_type, fragment):
    program = PY.parse(text)
    result = execute(program, ["webshop"], {"webshop": {"goal": GOAL}})
    assert [e.error_type for e in result.errors] == [error_type]
    assert fragment in result.errors[0].message
    assert result.errors[0].call_index == len(program) - 1


@pytest.mark.parametrize(
    "setup",
    [{"goal": {"category": "fashion"}}, {"goal": {**GOAL, "colour": "red"}}, {"wish": "shoes"}],
)
def test_bad_setup_is_refused(setup):
    with pytest.raises(ValueError, match="validation error"):
        WebShop(setup)


# ------------------------------------------------------------------------ episodes


def test_gold_trajectory_reaches_reward_one():
    score = play(GOLD)
    assert score.success and score.reward == 1.0 and score.steps == 5 and score.error_type is None
    assert score.state_f1 == 1.0 and score.ast_match and score.executable and score.lcs == 1.0
    assert score.trajectory[-1].observation == (
        f"Thank you for your order: [{SHOE}] Alder & Co Lightweight Arch Support Men's Running Shoe "
        "(size=12, color=navy) for $69.99."
    )
    assert [step.error_type for step in score.trajectory] == [None] * 5


def test_buy_before_clicking_is_an_error_observation_and_the_episode_goes_on():
    score = play("API.buy()\n" + GOLD)
    first = score.trajectory[0]
    assert first.action.name == "buy" and first.error_type == "webshop:no_product"
    assert (
        first.observation
        == "Error (webshop:no_product): buy(): open a product first; this is the search page"
    )
    # the episode went on and the shopper recovered: success, the refused step still counts
    assert score.success and score.reward == 1.0 and score.steps == 6 and score.error_type is None
    assert not score.executable and [(e.call_index, e.error_type) for e in score.errors] == [
        (0, "webshop:no_product")
    ]


def test_a_missing_option_then_stopping_fails_with_the_first_error():
    score = play(
        f'API.search("{QUERY}")\nAPI.click("{SHOE}")\nAPI.select_option("flavor", "mocha")\nAPI.buy()'
    )
    assert [s.error_type for s in score.trajectory] == [
        None,
        None,
        "webshop:no_such_option",
        "webshop:options_missing",
    ]
    assert not score.success and score.reward == 0.0 and score.steps == 4
    assert score.error_type == "webshop:no_such_option"
    assert [e.error_type for e in score.errors][-1] == "episode:stopped"


def test_right_product_wrong_size_gets_partial_reward():
    # 2 of 2 attributes + 1 of 2 options (color yes, size 9 not 12) + price 69.99 <= 70 → 4 / 5
    score = play(GOLD.replace('"size", "12"', '"size", "9"'))
    assert not score.success and score.reward == pytest.approx(0.8)
    assert score.error_type == "episode:reward"
    assert (
        score.errors[0].message == "reward 0.800 < 1: bought B059HRQMXJ: type factor 1, 4 of 5 goal terms met"
    )


def test_over_budget_and_wrong_color_gets_partial_reward():
    # the same purchase against a $60 budget, in black: 2 attributes + 1 option (size) + 0 (price) → 3 / 5
    task = TASK.model_copy(update={"setup": {"webshop": {"goal": {**GOAL, "price_max": 60}}}})
    score = play(GOLD.replace('"navy"', '"black"'), task)
    assert score.reward == pytest.approx(0.6) and not score.success


def test_other_type_or_category_scales_the_reward_down():
    # B0RJW5MK9S: a women's running shoe (same category), lightweight + memory foam, $52.99, sizes 8-11
    women = "Alder & Co Lightweight Breathable Women's Running Shoe"
    assert BY_ID["B0RJW5MK9S"]["attributes"] == ["lightweight", "breathable", "memory foam"]
    score = play(
        f'API.search("{women}")\nAPI.click("B0RJW5MK9S")\nAPI.select_option("size", "11")\n'
        'API.select_option("color", "black")\nAPI.buy()'
    )
    assert score.reward == pytest.approx(0.5 * 3 / 5)  # r_type 0.5 x (2 attributes + 0 options + price)
    # B0SXEGEYZD: a $19.99 shampoo (other category): only the price term holds
    shampoo = 'API.search("Sable For Dry Hair Sulfate Free Shampoo")\nAPI.click("B0SXEGEYZD")\nAPI.select_option("size", "12 fl oz")\nAPI.buy()'
    assert play(shampoo).reward == pytest.approx(0.1 * 1 / 5)


def test_goal_without_budget_drops_the_price_term():
    goal = {k: v for k, v in GOAL.items() if k != "price_max"}
    task = TASK.model_copy(update={"setup": {"webshop": {"goal": goal}}})
    assert play(GOLD.replace('"size", "12"', '"size", "9"'), task).reward == pytest.approx(3 / 4)


def test_step_limit_ends_the_episode():
    score = play("\n".join(f'API.search("shoe {k}")' for k in range(20)))
    assert score.steps == WebShop.max_steps == 15 and score.reward == 0.0
    assert score.error_type == "episode:step_limit" and score.executable


def test_actions_after_buy_are_never_taken():
    result = run_episode(["webshop"], TASK.setup, ReplayPolicy(PY.parse(GOLD + "\nAPI.back()")), TASK.query)
    assert result.end == "terminal" and len(result.trajectory) == 5 and result.success


def test_an_unparseable_answer_is_an_error_observation_too():
    episode = Episode(["webshop"], TASK.setup)
    step = episode.step(CallParseError("syntax", "line 1: invalid syntax"), "API.search(")
    assert step.action is None and step.text == "API.search(" and step.error_type == "parse:syntax"
    assert step.observation == "Error (parse:syntax): line 1: invalid syntax" and not episode.over
    for call in PY.parse(GOLD):
        episode.step(call)
    result = episode.result()
    assert result.success and [e.error_type for e in result.errors] == ["parse:syntax"]
    with pytest.raises(RuntimeError, match="over"):
        episode.step(PY.parse("API.back()")[0])


def test_final_reply_names_the_purchase():
    bought = {
        "id": SHOE,
        "title": BY_ID[SHOE]["title"],
        "options": {"size": "12", "color": "navy"},
        "price": 69.99,
    }
    assert TOOL.final_reply(PY.parse(GOLD).root, [None] * 4 + [bought]) == (
        "I bought the Alder & Co Lightweight Arch Support Men's Running Shoe (size=12, color=navy) for $69.99."
    )
    observations = [step.observation for step in play(GOLD).trajectory]  # what episode samples carry
    assert TOOL.final_reply(PY.parse(GOLD).root, observations) == (
        f"I bought [{SHOE}] Alder & Co Lightweight Arch Support Men's Running Shoe (size=12, color=navy) for $69.99."
    )


# --------------------------------------------------------------------- task files


def test_frozen_tasks_verify_and_a_broken_trajectory_fails_clearly(tmp_path):
    shipped = TOOL.tasks_file()
    n_tasks, n_labels, problems = verify_tasks(shipped)
    assert (n_tasks, n_labels, problems) == (120, 120, [])
    lines = shipped.read_text().splitlines()
    task = json.loads(lines[2])
    size = next(c for c in task["labels"][0] if c["name"] == "select_option")
    wrong = next(
        v
        for v in BY_ID[task["labels"][0][1]["arguments"]["item"]]["options"][size["arguments"]["name"]]
        if v != size["arguments"]["value"]
    )
    size["arguments"]["value"] = wrong
    lines[2] = json.dumps(task)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    _, _, problems = verify_tasks(broken)
    assert len(problems) == 1 and problems[0].where == f"{broken}:3: task '{task['id']}' label 1"
    assert problems[0].message.startswith("episode:reward: reward 0.")


def test_episode_tasks_must_offer_one_environment(tmp_path):
    line = json.loads(TOOL.tasks_file().read_text().splitlines()[0])
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({**line, "category": "multi_call"}) + "\n")
    with pytest.raises(
        UserError, match=r"t.jsonl:1: field 'category': an episode task offers exactly one environment"
    ):
        load_tasks(path)
    path.write_text(json.dumps({**line, "tool": "weather", "tools": ["weather"]}) + "\n")
    with pytest.raises(UserError, match="environments: none"):
        load_tasks(path)
