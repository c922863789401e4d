"""Client for any OpenAI-compatible chat-completions API (OpenAI, vLLM, TGI, LiteLLM...).

Each question goes out as one user turn: the prompt's text parts and its five images, in order, the
images as base64 data URLs. The key comes from ``$OPENAI_API_KEY`` (servers that need none, such as
a local vLLM, get a placeholder) and never appears in messages or files. Requests run concurrently
and are retried with exponential backoff on connection errors, timeouts, 429 and 5xx (the openai
SDK's policy); errors that retrying cannot fix stop the run with a one-line message.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Literal

from medgen.errors import MedgenError
from medgen.inference.config import InferenceConfig

API_KEY_ENV = "OPENAI_API_KEY"


def image_data_url(image: Any, image_format: str = "png") -> str:
    """A PIL image as a ``data:image/...;base64,`` URL."""
    buffer = io.BytesIO()
    image.convert("RGB").save(
        buffer, format=image_format.upper(), **({"quality": 95} if image_format == "jpeg" else {})
    )
    return f"data:image/{image_format};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def chat_messages(
    prompt: list[dict[str, Any]], images: Sequence[Any], image_format: str = "png"
) -> list[dict[str, Any]]:
    """The dataset's TRL prompt as OpenAI chat messages: each image placeholder filled with the next image."""
    remaining = iter(images)
    messages = []
    for message in prompt:
        content = message["content"]
        if isinstance(content, str):
            messages.append({"role": message["role"], "content": content})
            continue
        parts: list[dict[str, Any]] = []
        for part in content:
            if part.get("type") == "image":
                image = next(remaining, None)
                if image is None:
                    raise MedgenError("the prompt has more image placeholders than the sample has images")
                parts.append({"type": "image_url", "image_url": {"url": image_data_url(image, image_format)}})
            elif part.get("type") == "text":
                parts.append({"type": "text", "text": part.get("text") or ""})
        messages.append({"role": message["role"], "content": parts})
    if next(remaining, None) is not None:
        raise MedgenError("the sample has more images than its prompt has image placeholders")
    return messages


class EndpointClient:
    """Answers questions through the OpenAI-compatible chat-completions endpoint ``config.endpoint``.

    Images go as ``image_format`` data URLs (PNG: lossless; JPEG for servers that cap request sizes).
    """

    def __init__(
        self,
        config: InferenceConfig,
        api_key: str | None = None,
        image_format: Literal["png", "jpeg"] = "png",
    ):
        import openai

        if not config.endpoint or not config.model:
            raise MedgenError("an endpoint client needs --endpoint URL and --model NAME")
        self.config = config
        self.url, self.model = config.endpoint, config.model
        self.image_format = image_format
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._max_tokens_accepted = True  # False once the server asks for max_completion_tokens
        self._client = openai.OpenAI(
            base_url=self.url,
            api_key=key or "EMPTY",
            max_retries=config.max_retries,
            timeout=config.timeout_s,
        )

    def details(self) -> dict[str, Any]:
        """What is being scored (never the key)."""
        c = self.config
        return {
            "endpoint": self.url,
            "model": self.model,
            "temperature": c.temperature,
            "max_tokens": c.max_new_tokens,
        }

    def complete(self, prompt: list[dict[str, Any]], images: Sequence[Any]) -> str:
        """The model's answer text to one question."""
        import openai

        c, url, model = self.config, self.url, self.model
        messages = chat_messages(prompt, images, self.image_format)
        budget: dict[str, Any] = {
            "max_tokens" if self._max_tokens_accepted else "max_completion_tokens": c.max_new_tokens
        }
        try:
            try:
                response = self._client.chat.completions.create(
                    model=model,
                    messages=messages,  # type: ignore[arg-type]
                    temperature=c.temperature or 0.0,
                    **budget,
                )
            except openai.BadRequestError as error:
                # Newer OpenAI models refuse max_tokens and ask for max_completion_tokens.
                if not self._max_tokens_accepted or "max_completion_tokens" not in str(error.message):
                    raise
                self._max_tokens_accepted = False
                return self.complete(prompt, images)
        except openai.AuthenticationError:
            raise MedgenError(
                f"{url} rejected the API key (HTTP 401): set {API_KEY_ENV} to a key valid for this endpoint"
            ) from None
        except openai.PermissionDeniedError:
            raise MedgenError(
                f"{url} refused access (HTTP 403): the key in {API_KEY_ENV} may lack access to {model}"
            ) from None
        except openai.NotFoundError:
            raise MedgenError(
                f"{url} answered 404: check that --endpoint is the API's base URL (usually ending in /v1) "
                f"and that the server serves --model {model}"
            ) from None
        except openai.APITimeoutError:
            raise MedgenError(
                f"{url} did not answer within {c.timeout_s:g} s after {c.max_retries} retries: raise --timeout or check the server"
            ) from None
        except openai.APIConnectionError as error:
            reason = error.__cause__ or error
            raise MedgenError(
                f"cannot reach {url} ({type(reason).__name__}) after {c.max_retries} retries: is the server running?"
            ) from None
        except openai.APIStatusError as error:
            raise MedgenError(
                f"{url} answered HTTP {error.status_code}: {str(error.message)[:300]}"
            ) from None
        if not response.choices:
            return ""
        return response.choices[0].message.content or ""

    def generate(self, questions: Sequence[Any]) -> Iterator[tuple[Any, str]]:
        """(question, answer text) pairs as they complete, ``concurrency`` requests at a time."""
        pending: dict[Future[str], Any] = {}
        todo = iter(questions)
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            try:
                while True:
                    while len(pending) < self.config.concurrency:
                        question = next(todo, None)
                        if question is None:
                            break
                        pending[pool.submit(self.complete, question.prompt, question.images)] = question
                    if not pending:
                        return
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        question = pending.pop(future)
                        yield question, future.result()
            finally:
                for future in pending:
                    future.cancel()
