"""A ChainOfThought that answers a question from a given context: one predictor, two inputs. The starting point for
a program of your own (docs/programs.md).

    python -m core program describe examples/programs/context_qa.py:ContextQA
"""

import dspy


class AnswerFromContext(dspy.Signature):
    """Answer the question with a short span of the context."""

    context: str = dspy.InputField()
    question: str = dspy.InputField()
    answer: str = dspy.OutputField(desc="a few words, copied from the context")


class ContextQA(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.answer = dspy.ChainOfThought(AnswerFromContext)

    def forward(self, context: str, question: str) -> dspy.Prediction:
        return self.answer(context=context, question=question)
