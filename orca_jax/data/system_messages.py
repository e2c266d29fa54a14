"""The 16 system messages of Orca (Table 2) and which ones each FLAN sub-collection uses.

Ids are the paper's, 1-indexed; id 1 is the empty system message. The typos ("User will
you give you", "so user don’t need") are the paper's and are kept: teachers were sent them
verbatim. Source: docs/orca_facts.md#1-system-messages (1a list, 1b Figure 6 mapping).
"""

from __future__ import annotations

SYSTEM_MESSAGES: dict[int, str] = {
    1: "",
    2: "You are an AI assistant. Provide a detailed answer so user don’t need to search outside to understand the answer.",
    3: "You are an AI assistant. You will be given a task. You must generate a detailed and long answer.",
    4: "You are a helpful assistant, who always provide explanation. Think like you are answering to a five year old.",
    5: "You are an AI assistant that follows instruction extremely well. Help as much as you can.",
    6: "You are an AI assistant that helps people find information. Provide a detailed answer so user don’t need to search outside to understand the answer.",
    7: "You are an AI assistant. User will you give you a task. Your goal is to complete the task as faithfully as you can. While performing the task think step-by-step and justify your steps.",
    8: "You should describe the task and explain your answer. While answering a multiple choice question, first output the correct answer(s). Then explain why other answers are wrong. Think like you are answering to a five year old.",
    9: "Explain how you used the definition to come up with the answer.",
    10: "You are an AI assistant. You should describe the task and explain your answer. While answering a multiple choice question, first output the correct answer(s). Then explain why other answers are wrong. You might need to use additional knowledge to answer the question.",
    11: "You are an AI assistant that helps people find information. User will you give you a question. Your task is to answer as faithfully as you can. While answering think step-by-step and justify your answer.",
    12: "User will you give you a task with some instruction. Your job is follow the instructions as faithfully as you can. While answering think step-by-step and justify your answer.",
    13: "You are a teacher. Given a task, you explain in simple steps what the task is asking, any guidelines it provides and how to use those guidelines to find the answer.",
    14: "You are an AI assistant, who knows every language and how to translate one language to another. Given a task, you explain in simple steps what the task is asking, any guidelines that it provides. You solve the task and show how you used the guidelines to solve the task.",
    15: "Given a definition of a task and a sample input, break the definition into small parts.\nEach of those parts will have some instruction. Explain their meaning by showing an\nexample that meets the criteria in the instruction. Use the following format:\nPart  #: a key part of the definition.\nUsage: Sample response that meets the criteria from the key part. Explain why you think\nit meets the criteria.",
    16: "You are an AI assistant that helps people find information.",
}

# Sub-collections, named as in FLAN-v2 and in OpenOrca ids (prefix -> collection).
COLLECTIONS = ("cot", "niv2", "t0", "flan2021")
ID_PREFIX_TO_COLLECTION = {"cot": "cot", "niv": "niv2", "t0": "t0", "flan": "flan2021"}

# Paper Figure 6: allowed system-message ids per sub-collection.
ALLOWED_SYSTEM_MESSAGE_IDS: dict[str, tuple[int, ...]] = {
    "cot": (6, 11, 16),
    "niv2": (1, 2, 5, 7, 9, 12, 13, 14, 15),
    "t0": (1, 2, 3, 5, 7),
    "flan2021": (3, 4, 7),
}
# Messages 8 and 10 are used only for multiple-choice queries (paper section 3.1.1).
MULTIPLE_CHOICE_ONLY_IDS: tuple[int, ...] = (8, 10)
FLAN2021_MULTIPLE_CHOICE_IDS: tuple[int, ...] = (3, 4, 7, 8, 10)


def allowed_system_message_ids(collection: str, multiple_choice: bool = False) -> tuple[int, ...]:
    """The system-message ids the paper draws from for one query of `collection`."""
    if collection not in ALLOWED_SYSTEM_MESSAGE_IDS:
        raise ValueError(f"unknown FLAN sub-collection {collection!r}; expected one of {COLLECTIONS}")
    if collection == "flan2021" and multiple_choice:
        return FLAN2021_MULTIPLE_CHOICE_IDS
    return ALLOWED_SYSTEM_MESSAGE_IDS[collection]


def system_message(message_id: int) -> str:
    """The text of system message `message_id` (1..16)."""
    if message_id not in SYSTEM_MESSAGES:
        raise ValueError(f"system message id must be in 1..16, got {message_id}")
    return SYSTEM_MESSAGES[message_id]
