#!/usr/bin/env python3
"""Writes data/judge_prompts.jsonl: the project's own eight judge prompts,
with the names, types, categories and output formats of FastChat's
llm_judge/data/judge_prompts.jsonl (so either file works with either tool).
The texts are written for this project."""
import json, os

RATING_RULE = ("Finish with your rating on a scale of 1 to 10, written exactly in this form: "
               "\"Rating: [[5]]\".")
PAIR_RULE = ("Finish with your verdict written exactly in this form: \"[[A]]\" if assistant A is better, "
             "\"[[B]]\" if assistant B is better, \"[[C]]\" for a tie.")
FAIR = ("Judge the content only: the order in which the answers appear, their length and the assistants' "
        "names must not influence you.")

P = [
    dict(name="single-v1", type="single",
         system_prompt="You are a careful, impartial reviewer of AI assistant answers.",
         prompt_template=("Evaluate how well the assistant answered the user's request below. Consider whether "
                          "it is helpful, relevant, correct, deep enough, and clearly written. Write a short "
                          "justification first. " + RATING_RULE +
                          "\n\n<|Request|>\n{question}\n\n<|Assistant's answer|>\n{answer}\n<|End of answer|>"),
         description="Single answer grading, general questions", category="general", output_format="[[rating]]"),
    dict(name="single-math-v1", type="single",
         system_prompt="You are a careful, impartial reviewer of AI assistant answers.",
         prompt_template=("Evaluate the assistant's answer to the request below. A correct reference answer is "
                          "given: compare the assistant's answer with it, point out every mistake, and weigh "
                          "correctness above everything else. Write a short justification first. " + RATING_RULE +
                          "\n\n<|Request|>\n{question}\n\n<|Reference answer|>\n{ref_answer_1}\n"
                          "<|End of reference|>\n\n<|Assistant's answer|>\n{answer}\n<|End of answer|>"),
         description="Single answer grading with a reference (math, reasoning, coding)", category="math",
         output_format="[[rating]]"),
    dict(name="single-v1-multi-turn", type="single",
         system_prompt=("You are a careful, impartial reviewer of AI assistant answers. You will see a two-turn "
                        "conversation; grade only the assistant's reply in the second turn, using the first "
                        "turn as context."),
         prompt_template=("Consider helpfulness, relevance, correctness, depth and clarity of the second reply. "
                          "Write a short justification first. " + RATING_RULE +
                          "\n\n<|Conversation|>\n### User:\n{question_1}\n\n### Assistant:\n{answer_1}\n\n"
                          "### User:\n{question_2}\n\n### Assistant:\n{answer_2}\n<|End of conversation|>"),
         description="Single answer grading of the second turn", category="general", output_format="[[rating]]"),
    dict(name="single-math-v1-multi-turn", type="single",
         system_prompt=("You are a careful, impartial reviewer of AI assistant answers. You will see a two-turn "
                        "conversation and correct reference answers for both turns; grade only the assistant's "
                        "second reply, chiefly for correctness against the reference."),
         prompt_template=("Point out every mistake in the second reply. Write a short justification first. " +
                          RATING_RULE +
                          "\n\n<|Reference|>\n### Turn 1 reference:\n{ref_answer_1}\n\n### Turn 2 reference:\n"
                          "{ref_answer_2}\n<|End of reference|>\n\n<|Conversation|>\n### User:\n{question_1}\n\n"
                          "### Assistant:\n{answer_1}\n\n### User:\n{question_2}\n\n### Assistant:\n{answer_2}\n"
                          "<|End of conversation|>"),
         description="Single answer grading of the second turn with references", category="math",
         output_format="[[rating]]"),
    dict(name="pair-v2", type="pairwise",
         system_prompt=("You are an impartial referee comparing two AI assistants' answers to the same user "
                        "request. Decide which answer serves the user better: more helpful, relevant, correct, "
                        "thorough and clear. " + FAIR + " Explain your reasoning briefly, then " +
                        PAIR_RULE[0].lower() + PAIR_RULE[1:]),
         prompt_template=("<|Request|>\n{question}\n\n<|Answer of assistant A|>\n{answer_a}\n<|End of A|>\n\n"
                          "<|Answer of assistant B|>\n{answer_b}\n<|End of B|>"),
         description="Pairwise comparison, general questions", category="general", output_format="[[A]]"),
    dict(name="pair-math-v1", type="pairwise",
         system_prompt=("You are an impartial referee comparing two AI assistants' answers to the same user "
                        "request, with a correct reference answer. Check each answer against the reference and "
                        "prefer the correct one; find the mistakes first. " + FAIR +
                        " Explain your reasoning briefly, then " + PAIR_RULE[0].lower() + PAIR_RULE[1:]),
         prompt_template=("<|Request|>\n{question}\n\n<|Reference answer|>\n{ref_answer_1}\n<|End of reference|>\n\n"
                          "<|Answer of assistant A|>\n{answer_a}\n<|End of A|>\n\n"
                          "<|Answer of assistant B|>\n{answer_b}\n<|End of B|>"),
         description="Pairwise comparison with a reference (math, reasoning, coding)", category="math",
         output_format="[[A]]"),
    dict(name="pair-v2-multi-turn", type="pairwise",
         system_prompt=("You are an impartial referee comparing two AI assistants in two-turn conversations "
                        "with the same user. Judge which assistant answered the user's second question better, "
                        "using the first turn as context. " + FAIR + " Explain your reasoning briefly, then " +
                        PAIR_RULE[0].lower() + PAIR_RULE[1:]),
         prompt_template=("<|Conversation with assistant A|>\n### User:\n{question_1}\n\n### Assistant A:\n"
                          "{answer_a_1}\n\n### User:\n{question_2}\n\n### Assistant A:\n{answer_a_2}\n"
                          "<|End of conversation with A|>\n\n<|Conversation with assistant B|>\n### User:\n"
                          "{question_1}\n\n### Assistant B:\n{answer_b_1}\n\n### User:\n{question_2}\n\n"
                          "### Assistant B:\n{answer_b_2}\n<|End of conversation with B|>"),
         description="Pairwise comparison of the second turn", category="general", output_format="[[A]]"),
    dict(name="pair-math-v1-multi-turn", type="pairwise",
         system_prompt=("You are an impartial referee comparing two AI assistants in two-turn conversations "
                        "with the same user, given correct reference answers for both turns. Judge which "
                        "assistant answered the second question more correctly; find the mistakes first. " +
                        FAIR + " Explain your reasoning briefly, then " + PAIR_RULE[0].lower() + PAIR_RULE[1:]),
         prompt_template=("<|Reference|>\n### Turn 1 reference:\n{ref_answer_1}\n\n### Turn 2 reference:\n"
                          "{ref_answer_2}\n<|End of reference|>\n\n<|Conversation with assistant A|>\n### User:\n"
                          "{question_1}\n\n### Assistant A:\n{answer_a_1}\n\n### User:\n{question_2}\n\n"
                          "### Assistant A:\n{answer_a_2}\n<|End of conversation with A|>\n\n"
                          "<|Conversation with assistant B|>\n### User:\n{question_1}\n\n### Assistant B:\n"
                          "{answer_b_1}\n\n### User:\n{question_2}\n\n### Assistant B:\n{answer_b_2}\n"
                          "<|End of conversation with B|>"),
         description="Pairwise comparison of the second turn with references", category="math",
         output_format="[[A]]"),
]

if __name__ == "__main__":
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "data", "judge_prompts.jsonl"), "w") as f:
        for p in P:
            f.write(json.dumps(p) + "\n")
