"""cat_api: rules and their error types, deterministic results, defaults filled in the state,
the shipped catalog, and exact scorer verdicts on hand-written wrong predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import assert_wrong
from toolbench.core.calls import PythonFormat
from toolbench.core.executor import execute
from toolbench.core.score import Scorer, flatten_state
from toolbench.foundation.records import Task
from toolbench.tools.cat_api import BREEDS, IMAGES, TOOL, CatApi, make_catalog

PY = PythonFormat(TOOL.format_context())
CATALOG = make_catalog.build()
DEFAULT_VOTES = CATALOG["account"]["votes"]  # ids 1001..1008
DEFAULT_FAVOURITES = CATALOG["account"]["favourites"]  # ids 2001..2006
FAVOURITED = {f["image_id"] for f in DEFAULT_FAVOURITES}
FREE = [img["id"] for img in CATALOG["images"] if img["id"] not in FAVOURITED]  # not favourited yet
A, B, C = FREE[:3]


def run(text: str, setup: dict | None = None):
    return execute(PY.parse(text), ["cat_api"], {"cat_api": setup} if setup is not None else None)


def state(text: str, setup: dict | None = None) -> dict:
    result = run(text, setup)
    assert result.ok, result.errors
    return result.state["cat_api"]


# ------------------------------------------------------------------------------ catalog


def test_catalog_file_is_what_the_seeded_script_writes():
    here = Path(make_catalog.__file__).parent
    assert (here / "catalog.json").read_text(encoding="utf-8") == make_catalog.dump_catalog(CATALOG)
    pools = here.parent.parent / "templates" / "cat_api" / "pools"
    for name, text in make_catalog.dump_pools(CATALOG).items():
        assert (pools / name).read_text(encoding="utf-8") == text, name


def test_catalog_shape():
    assert len(BREEDS) == 67 and BREEDS["beng"]["name"] == "Bengal"
    assert len(IMAGES) == 400 and len({i.lower() for i in IMAGES}) == 400
    with_breed = [img for img in IMAGES.values() if img["breed_ids"]]
    assert 0 < len(with_breed) < 400  # some images have no breed
    assert all(sum(b in img["breed_ids"] for img in IMAGES.values()) >= 3 for b in BREEDS)
    assert [v["id"] for v in DEFAULT_VOTES] == list(range(1001, 1009))
    assert [f["id"] for f in DEFAULT_FAVOURITES] == list(range(2001, 2007))


# -------------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("text", "error_type", "fragment"),
    [
        ('API.get_image("nope")', "cat_api:not_found", "no image with id 'nope'"),
        ('API.vote(image_id="nope", value=1)', "cat_api:not_found", "no image with id 'nope'"),
        ('API.add_favourite("nope")', "cat_api:not_found", "no image with id 'nope'"),
        ('API.search_images(breed_id="bengal")', "cat_api:not_found", "no breed with id 'bengal'"),
        ("API.delete_vote(4242)", "cat_api:not_found", "no vote with id 4242"),
        ("API.delete_vote(1001)\nAPI.delete_vote(1001)", "cat_api:not_found", "no vote with id 1001"),
        ("API.delete_favourite(1001)", "cat_api:not_found", "no favourite with id 1001"),
        (f'API.add_favourite("{DEFAULT_FAVOURITES[0]["image_id"]}")', "cat_api:duplicate", "already one"),
        (f'API.add_favourite("{A}")\nAPI.add_favourite("{A}")', "cat_api:duplicate", "already one"),
        ('API.search_breeds("  ")', "cat_api:value", "must not be blank"),
        (f'API.vote(image_id="{A}", value=0)', "schema:enum", "0 is not one of [1, -1]"),
        ("API.search_images(limit=26)", "schema:maximum", "26 is greater than the maximum of 25"),
        ('API.search_images(size="huge")', "schema:enum", "'huge' is not one of"),
        ('API.search_images(order="random")', "schema:enum", "'random' is not one of"),
        ('API.search_images(category="cars")', "schema:enum", "'cars' is not one of"),
        ("API.search_images(mime_types=[])", "schema:minItems", "[] should be non-empty"),
        ("API.search_images(has_breeds=1)", "schema:type", "1 is not of type 'boolean'"),
        ("API.list_votes(page=-1)", "schema:minimum", "-1 is less than the minimum of 0"),
        ("API.list_breeds(limit=101)", "schema:maximum", "101 is greater than the maximum of 100"),
        ("API.delete_favourite(0)", "schema:minimum", "0 is less than the minimum of 1"),
        ('API.delete_vote("1001")', "schema:type", "'1001' is not of type 'integer'"),
        (f'API.vote(image_id="{A}")', "schema:required", "'value' is a required property"),
        (f'API.add_favourite(image_id="{A}", sub_id="me")', "schema:additionalProperties", "'sub_id'"),
    ],
)
def test_rules_give_exact_error_types(text, error_type, fragment):
    program = PY.parse(text)
    result = execute(program, ["cat_api"])
    assert [e.error_type for e in result.errors] == [error_type]
    assert fragment in result.errors[0].message
    assert result.errors[0].call_index == len(program) - 1


def test_favourite_can_be_added_again_after_it_was_removed():
    image = DEFAULT_FAVOURITES[0]["image_id"]
    assert run(f'API.add_favourite("{image}")').errors[0].error_type == "cat_api:duplicate"
    assert run(f'API.delete_favourite(2001)\nAPI.add_favourite("{image}")').ok


def test_failed_reads_are_not_logged():
    result = run('API.search_breeds("rex")\nAPI.get_image("nope")')
    assert [r["function"] for r in result.state["cat_api"]["reads"]] == ["search_breeds"]


# ------------------------------------------------------------------- reads and defaults

SEARCH_DEFAULTS = {
    "function": "search_images",
    "breed_id": None,
    "category": None,
    "limit": 1,
    "size": "med",
    "mime_types": ["gif", "jpg", "png"],
    "order": "RANDOM",
    "has_breeds": False,
}


def test_reads_are_logged_with_defaults_filled():
    got = state(
        'API.search_images()\nAPI.list_votes()\nAPI.list_breeds(limit=3)\nAPI.search_breeds(" Maine  COON ")'
    )
    assert got["reads"] == sorted(
        [
            SEARCH_DEFAULTS,
            {"function": "list_votes", "limit": 10, "page": 0, "after_writes": 0},
            {"function": "list_breeds", "limit": 3, "page": 0},
            {"function": "search_breeds", "q": "maine coon"},
        ],
        key=repr,
    )
    assert got["store_diff"] == {
        "added_votes": [],
        "deleted_votes": [],
        "added_favourites": [],
        "deleted_favourites": [],
    }


def test_explicit_defaults_and_equivalent_spellings_give_the_same_state():
    omitted = state('API.search_images(breed_id="beng", limit=3)')
    explicit = state(
        'API.search_images(breed_id="beng", category=None, limit=3, size="med", '
        'mime_types=["png", "gif", "jpg", "gif"], order="RANDOM", has_breeds=True)'
    )
    assert omitted == explicit
    assert omitted["reads"][0]["has_breeds"] is True  # a breed filter implies breed information
    assert state("API.list_favourites()") == state("API.list_favourites(limit=10, page=0)")


def test_search_results_are_deterministic_and_follow_the_filters():
    text = 'API.search_images(category="hats", mime_types=["jpg", "png"], limit=5, has_breeds=True)'
    first, again = (
        run(text).results[0],
        CatApi().search_images(category="hats", mime_types=["png", "jpg"], limit=5, has_breeds=True),
    )
    assert first == again and len(first) == 5 and len({img["id"] for img in first}) == 5
    for img in first:
        assert img["categories"] == ["hats"] and img["mime_type"] in ("jpg", "png") and img["breeds"]
    assert run("API.search_images()").results[0][0]["id"] == "TxkR4b9LU"  # pinned: same in every run


def test_search_orders_sizes_and_empty_results():
    ids_by_upload = [img["id"] for img in CATALOG["images"] if img["mime_type"] == "gif"]
    asc = run('API.search_images(mime_types=["gif"], order="ASC", limit=4)').results[0]
    desc = run('API.search_images(mime_types=["gif"], order="DESC", limit=4, size="thumb")').results[0]
    assert [img["id"] for img in asc] == ids_by_upload[:4]
    assert [img["id"] for img in desc] == ids_by_upload[::-1][:4]
    assert all(max(img["width"], img["height"]) <= 150 for img in desc)
    full = run(f'API.get_image("{desc[0]["id"]}")').results[0]
    assert (full["width"], full["height"]) == (IMAGES[full["id"]]["width"], IMAGES[full["id"]]["height"])
    breed = next(b for b in BREEDS if sum(b in i["breed_ids"] for i in IMAGES.values()) < 25)
    assert len(run(f'API.search_images(breed_id="{breed}", limit=25)').results[0]) < 25  # all it has
    assert run('API.search_breeds("dog")').results == [[]]


def test_get_image_and_breed_reads():
    image = next(img for img in CATALOG["images"] if img["breed_ids"])
    result = run(
        f'API.get_image("{image["id"]}")\nAPI.search_breeds("rex")\nAPI.list_breeds(limit=2, page=1)'
    )
    got, rex, page = result.results
    assert got["breeds"][0] == BREEDS[image["breed_ids"][0]] and got["created_at"] == image["created_at"]
    assert [b["id"] for b in rex] == ["crex", "drex", "srex"]
    assert [b["id"] for b in page] == ["abob", "acur"]


# ------------------------------------------------------------------------------ writes


def test_writes_update_the_store_and_the_diff():
    result = run(
        f'API.vote(image_id="{A}", value=-1)\nAPI.add_favourite("{A}")\nAPI.delete_vote(1002)\n'
        "API.delete_favourite(2003)\nAPI.list_votes(limit=20)\nAPI.list_favourites(limit=20)"
    )
    assert result.ok
    vote, fav, _, _, votes, favourites = result.results
    assert vote == {"message": "SUCCESS", "id": 1009, "image_id": A, "value": -1}
    assert fav == {"message": "SUCCESS", "id": 2007}
    assert [v["id"] for v in votes] == [1001, *range(1003, 1010)]
    assert [f["id"] for f in favourites] == [2001, 2002, 2004, 2005, 2006, 2007]
    cat = result.state["cat_api"]
    assert cat["store_diff"] == {
        "added_votes": [{"image_id": A, "value": -1}],
        "deleted_votes": [1002],
        "added_favourites": [A],
        "deleted_favourites": [2003],
    }
    assert {"function": "list_votes", "limit": 20, "page": 0, "after_writes": 2} in cat["reads"]
    assert {"function": "list_favourites", "limit": 20, "page": 0, "after_writes": 2} in cat["reads"]


def test_diff_ignores_generated_ids_and_write_order():
    one = state(f'API.vote(image_id="{A}", value=1)\nAPI.vote(image_id="{B}", value=-1)')
    other = state(f'API.vote(image_id="{B}", value=-1)\nAPI.vote(image_id="{A}", value=1)')
    assert one == other


def test_deleting_what_the_program_added_cancels_it():
    got = state(
        f'API.vote(image_id="{A}", value=1)\nAPI.delete_vote(1009)\nAPI.add_favourite("{B}")\nAPI.delete_favourite(2007)'
    )
    assert got["store_diff"] == {
        "added_votes": [],
        "deleted_votes": [],
        "added_favourites": [],
        "deleted_favourites": [],
    }


def test_setup_store_as_rows_or_records_and_fresh_defaults_each_run():
    rows = {"votes": [[5000, A, 1]], "favourites": [[7000, B]]}
    records = {
        "votes": [{"id": 5000, "image_id": A, "value": 1}],
        "favourites": [{"id": 7000, "image_id": B}],
    }
    text = f'API.delete_vote(5000)\nAPI.vote(image_id="{C}", value=1)\nAPI.list_votes()\nAPI.add_favourite("{A}")'
    assert run(text, rows).results == run(text, records).results
    assert run(text, rows).results[1]["id"] == 5001 and run(text, rows).results[2] == [
        {"id": 5001, "image_id": C, "value": 1}
    ]
    assert run(f'API.add_favourite("{B}")', rows).errors[0].error_type == "cat_api:duplicate"
    assert run("API.delete_vote(1001)", rows).errors[0].error_type == "cat_api:not_found"
    # writes never leak into the shared default store
    run("API.delete_vote(1001)\nAPI.delete_favourite(2001)")
    assert [v["id"] for v in run("API.list_votes()").results[0]] == list(range(1001, 1009))
    assert run("API.delete_favourite(2001)").ok


def test_final_reply_summarises_results():
    program = PY.parse(
        f'API.vote(image_id="{A}", value=1)\nAPI.search_breeds("rex")\nAPI.delete_favourite(2001)'
    )
    result = execute(program, ["cat_api"])
    assert TOOL.final_reply(program.root, result.results) == (
        f"I recorded your up-vote on image {A} (vote 1009), found 3 breeds: Cornish Rex, Devon Rex, "
        "Selkirk Rex and removed favourite 2001."
    )
    empty = PY.parse('API.search_images(breed_id="beng", category="space", mime_types=["gif"])')
    assert TOOL.final_reply(empty.root, execute(empty, ["cat_api"]).results) == (
        "I found no images matching that search."
    )


# ------------------------------------------------------------------------------- scorer

SETUP = {"cat_api": {"votes": [[1500, A, 1]], "favourites": [[2500, B]]}}
GOLD = f'API.delete_favourite(2500)\nAPI.add_favourite("{B}")\nAPI.vote(image_id="{C}", value=1)\nAPI.list_votes(limit=5)'
TASK = Task(
    id="cat-t1",
    tool="cat_api",
    category="multi_call",
    query=f"Re-favourite image {B} (remove favourite 2500, then add it again), upvote {C}, then list my votes 5 per page.",
    labels=[PY.parse(GOLD)],
    setup=SETUP,
)


def score(text: str):
    return Scorer().score(TASK, PY.parse(text))


def test_gold_state_items():
    # four items: the listing (after one vote write), the added vote, the added and the deleted favourite;
    # empty lists (deleted_votes) contribute nothing
    assert sorted(flatten_state(Scorer().gold(TASK)[0].execution.state)) == sorted(
        [
            ("cat_api.reads[]", '{"after_writes": 1, "function": "list_votes", "limit": 5, "page": 0}'),
            ("cat_api.store_diff.added_votes[]", json.dumps({"image_id": C, "value": 1})),
            ("cat_api.store_diff.added_favourites[]", json.dumps(B)),
            ("cat_api.store_diff.deleted_favourites[]", "2500"),
        ]
    )


def test_gold_and_equivalent_orders_succeed():
    assert score(GOLD).success and score(GOLD).ast_match and score(GOLD).state_f1 == 1.0
    vote_first = (
        f'API.vote(image_id="{C}", value=1)\nAPI.delete_favourite(2500)\nAPI.add_favourite("{B}")\n'
        "API.list_votes(limit=5, page=0)"
    )
    result = score(vote_first)
    assert result.success and result.state_f1 == 1.0 and not result.ast_match


@pytest.mark.parametrize(
    ("name", "text", "error_type", "f1"),
    [
        # the added vote differs: 3 of 4 items on each side
        ("wrong value", GOLD.replace("value=1", "value=-1"), "state:mismatch", 3 / 4),
        # the duplicate rule fails the first call: nothing executed, no item in common
        (
            "wrong order (rule)",
            GOLD.replace(
                f'API.delete_favourite(2500)\nAPI.add_favourite("{B}")',
                f'API.add_favourite("{B}")\nAPI.delete_favourite(2500)',
            ),
            "cat_api:duplicate",
            0.0,
        ),
        # listing before the vote reads the store as it was (after_writes 0): 3 of 4 on each side
        (
            "wrong order (listing)",
            GOLD.replace(
                f'API.vote(image_id="{C}", value=1)\nAPI.list_votes(limit=5)',
                f'API.list_votes(limit=5)\nAPI.vote(image_id="{C}", value=1)',
            ),
            "state:mismatch",
            3 / 4,
        ),
        # no vote: 3 predicted items (the listing now has after_writes 0), 2 shared: P 2/3, R 2/4
        (
            "missing call",
            GOLD.replace(f'API.vote(image_id="{C}", value=1)\n', ""),
            "state:mismatch",
            2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4),
        ),
        # one more read: 5 predicted items, all 4 gold ones among them: P 4/5, R 1
        ("extra call", GOLD + f'\nAPI.get_image("{C}")', "state:mismatch", 2 * (4 / 5) / (4 / 5 + 1)),
        # list_favourites instead of list_votes: the listing item differs, 3 of 4 on each side
        ("wrong function", GOLD.replace("list_votes", "list_favourites"), "state:mismatch", 3 / 4),
        # stops at the vote: the two favourite items are right, P 2/2, R 2/4
        (
            "schema violation",
            GOLD.replace("value=1", "value=2"),
            "schema:enum",
            2 * 1 * (2 / 4) / (1 + 2 / 4),
        ),
        # an unknown favourite id fails the first call: nothing executed
        (
            "unknown id",
            GOLD.replace("delete_favourite(2500)", "delete_favourite(2501)"),
            "cat_api:not_found",
            0.0,
        ),
    ],
)
def test_wrong_predictions_get_exact_verdicts(name, text, error_type, f1):
    assert_wrong(score(text), error_type, f1, name)


def test_shipped_test_tasks_use_held_out_templates():
    lines = Path(TOOL.tasks_file()).read_text(encoding="utf-8").splitlines()
    tasks = [json.loads(line) for line in lines]
    assert len(tasks) >= 100
    assert all(t["meta"]["template"].startswith("cat_") for t in tasks)  # the test-split entries
