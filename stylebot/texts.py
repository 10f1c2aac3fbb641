"""texts: every user-visible string, in English and Russian.

Handlers and the worker never inline prose; they call :func:`t` with a key.
A key missing in Russian falls back to English, and a key missing in
English is a bug that the tests catch (``KeyError``).
"""

from __future__ import annotations

EN = "en"
RU = "ru"

_EN: dict[str, str] = {
    # --- commands -----------------------------------------------------
    "cmd_start": "Start over: send a photo, then a style",
    "cmd_help": "How it works",
    "cmd_cancel": "Cancel the current job or dialog",
    "cmd_settings": "Output size, style strength, colours",
    "cmd_forget": "Delete everything stored about me",
    # --- dialog -------------------------------------------------------
    "start": (
        "Hi! I repaint your photo in the style of another picture.\n\n"
        "1. Send me the photo to repaint.\n"
        "2. Then send the picture whose style you like.\n\n"
        "/settings changes size, strength and colours; /help explains more."
    ),
    "help": (
        "I use neural style transfer (Gatys et al.): the content of your first image, "
        "painted with the textures and colours of the second.\n\n"
        "• Send a photo (or an image file: JPEG, PNG, WebP, HEIC), then a style picture. "
        "You can also send both at once as an album.\n"
        "• A result takes about a minute at {size} px; you see progress and a live preview.\n"
        "• Buttons under the result: Stronger, Weaker, Another style, Full quality file.\n"
        "• /settings: size, style strength, keep original colours.\n"
        "• /cancel stops the current job; /forget deletes everything about you.\n\n"
        "Privacy: I store only Telegram file ids and your settings; images are fetched when "
        "your job runs and the full-quality result is deleted after {hours} hours or on /forget."
    ),
    "ask_style": "Got the photo. Now send the picture whose style you want, or pick one of mine:",
    "ask_style_no_gallery": "Got the photo. Now send the picture whose style you want.",
    # --- style gallery ------------------------------------------------
    "gallery_caption": "🖼 My styles: tap a name to use one.",
    "gallery_button": "{n}. {name}",
    "gallery_prev": "◀",
    "gallery_next": "▶",
    "gallery_picked": "You picked: {name}",
    "another_style_gallery": "Send the new style picture (your photo is kept), or pick one of mine:",
    "result_style_credit": "{name} — {credit}",
    "ask_style_recent": "Got the photo. Now send a style picture, or tap one of your recent styles:",
    # --- group chats (privacy mode: the bot sees only commands and replies to it) ---
    "group_start": (
        "Hi! In a group I work like this:\n\n"
        "1. Reply /style to a photo (or send a photo with the caption /style).\n"
        "2. Reply to my answer with the picture whose style you want.\n\n"
        "The result comes as a reply to you, and only you can use its buttons. "
        "/settings works in a private chat with me; /help explains more."
    ),
    "group_help": (
        "Neural style transfer in a group:\n\n"
        "• Reply /style to a photo, or send a photo with the caption /style.\n"
        "• Then reply to my answer with the style picture (a photo or an image file).\n"
        "• A result takes about a minute at {size} px and replies to your message; its buttons "
        "(Stronger, Weaker, Another style, Full quality file) work only for you.\n"
        "• /cancel stops your job; /settings and /forget: in a private chat with me.\n\n"
        "Results are kept {hours} hours."
    ),
    "group_style_prompt": "Got the photo, {name}. Now reply to this message with the picture whose style you want.",
    "group_style_howto": (
        "Reply /style to a photo (or send a photo with the caption /style), "
        "then reply to my answer with a style picture."
    ),
    "group_send_picture": "Please reply with a picture (a photo or an image file) for the style.",
    "group_settings_private": "Settings are personal: use /settings in a private chat with me.",
    "not_your_buttons": "These buttons belong to {name}.",
    "not_your_buttons_anon": "These buttons belong to someone else.",
    "group_forget_private": "/forget deletes your data only in a private chat with me, so nothing was deleted here. Open a chat with me and send /forget there.",
    "recent_style_button": "🎨 Style {n}",
    "ask_content_first": "Send me the photo to repaint first (then the style).",
    "queued": "In the queue: position {position}. I will update this message.",
    "queued_next": "You are next in the queue. I will update this message.",
    "queued_many": "In the queue: more than {ahead} jobs ahead of you. I will update this message.",
    "resumed": "I was restarted; your job is back in the queue (position {position}).",
    "running": "Painting… {percent}% · about {eta} left",
    "running_start": "Painting… starting",
    "first_look": "A first look, drawn in a second. The painting is on its way…",
    "done": "Done in {seconds} s.",
    "result_caption": "{width}×{height} px · style {strength} · colours {colors}",
    "strength_weak": "weak",
    "strength_normal": "normal",
    "strength_strong": "strong",
    "strength_custom": "×{value}",
    "colors_kept": "original",
    "colors_style": "from the style",
    "already_queued": "You already have a job in the queue. /cancel it first.",
    "cancelled_job": "Cancelled your job.",
    "cancelled_dialog": "Cancelled. Send /start or a new photo whenever you like.",
    "nothing_to_cancel": "There is nothing to cancel. Send a photo to begin.",
    "job_cancelled_status": "Cancelled.",
    "forgotten": "Deleted everything I stored about you: settings, recent styles, jobs and results.",
    "rate_limited": "You have reached {limit} jobs per hour. Please try again in {minutes} min.",
    "rate_limited_size": (
        "A {size} px picture counts as {cost} pictures at {default} px, and that is more than is left of "
        "your hourly quota. Try {default} px in /settings now, or {size} px again in {minutes} min."
    ),
    "size_clamped": "{asked} px does not fit this server's memory: painting at {size} px instead.",
    "failed": "Sorry, something went wrong while painting. Please try again (/start).",
    "handler_failed": "Sorry, something went wrong on my side. Please try that again.",
    "busy_try_later": "I'm busy fixing a problem on my side (storage) and can't take new jobs right now. Please try again in a few minutes.",
    "trouble_retry": "A problem on my side (storage) interrupted your job. It stays in the queue and will run as soon as that is fixed; no need to send it again.",
    "job_timed_out": "Sorry, your job took longer than {limit} and was stopped. Try a smaller size (/settings) or another picture.",
    "gave_up_crashes": "Sorry, I gave up on your job: I was restarted during it {times} times, so it may be what brings me down. Please try another picture or a smaller size (/settings).",
    "bad_content_later": "I could not read your photo: {reason} Please send /start and another photo.",
    "bad_style_later": "I could not read the style picture: {reason} Please send another style.",
    "text_instead_of_image": "Please send an image (a photo or an image file). /help explains.",
    "unknown_command": "I don't know that command. Try /help.",
    "album_extra": "I use the first two images of an album: the first as the photo, the second as the style.",
    "album_too_many": "That album has {count} images; I take 2 (the photo, then a style) or 3 (the photo, then two styles to mix). Please send it again with fewer.",
    # --- bad input ----------------------------------------------------
    "bad_not_image": "That file is not an image I can use. Please send a JPEG, PNG, WebP or HEIC picture.",
    "bad_too_big_file": "That file is larger than 20 MB, which Telegram does not let bots download. Please send a smaller image.",
    "bad_corrupt": "That image seems broken or incomplete. Please send another one.",
    "bad_too_many_pixels": "That image is too large ({megapixels} megapixels). Please send one under {limit} megapixels.",
    "bad_too_small": "That image is too small ({width}×{height}). Please send one at least {minimum} px on each side.",
    "bad_aspect": "That image is too long and thin ({width}×{height}). Please send one no more than {ratio}:1.",
    "bad_download": "I could not download that image from Telegram. Please send it again.",
    "bad_server_file": (
        "Telegram's server gave me an unusable location for that image, so I did not fetch it. Please send it again."
    ),
    "upstream_redirect": "Telegram's server sent me to another address instead of answering, and I don't follow such detours. Please try again in a few minutes.",
    "upstream_server": "Telegram's servers are having trouble right now (I tried several times). Please try again in a few minutes.",
    "upstream_timeout": "Telegram did not answer in time (I tried several times). Please try again in a few minutes.",
    "bad_over_budget": "That image is too large for me to read ({megapixels} megapixels would take about {needed} MB of memory; my limit for reading images is {budget} MB). Please send a smaller one: up to {always} megapixels always works.",
    "bad_busy": "Many large images are being read right now, and yours waited {seconds} s for its turn. Please send it again in a minute.",
    # --- settings -----------------------------------------------------
    "settings": "Settings. Each applies to your next job and is shown under the result.",
    "settings_size": "Size: {size} px",
    "settings_strength": "Style: {strength}",
    "settings_colors_on": "Original colours: on",
    "settings_colors_off": "Original colours: off",
    "settings_saved": "Saved.",
    # --- result buttons -----------------------------------------------
    "btn_stronger": "Stronger",
    "btn_weaker": "Weaker",
    "btn_another_style": "Another style",
    "btn_full_quality": "Full quality file",
    "btn_timelapse": "🎞 How it was painted",
    "btn_mix_with": "Mix with another style",
    "btn_mix_ratio": "{first}/{second}",
    "mix_ask": "Send a second style picture, or pick one: I'll mix it with this result's style (your photo is kept).",
    "mix_caption": "mixed styles: {first}% first · {second}% second",
    "speed_painted": "Painted",
    "speed_quick": "Quick (in a second)",
    "quick_caption": "Quick: a draft in a second (choose Painted in /settings for the full painting)",
    "mix_same": "This result already has that mix.",
    "another_style": "Send the new style picture (your photo is kept).",
    "full_quality_gone": "That file is no longer stored (results are kept {hours} hours). Run the job again.",
    "timelapse_gone": "That animation is no longer stored (it is kept {hours} hours with the result).",
    "stale_button": "That button is out of date.",
    "strength_limit": "The style is already at its {which}.",
    "strongest": "strongest",
    "weakest": "weakest",
}

_RU: dict[str, str] = {
    "cmd_start": "Начать: пришлите фото, потом стиль",
    "cmd_help": "Как это работает",
    "cmd_cancel": "Отменить задачу или диалог",
    "cmd_settings": "Размер, сила стиля, цвета",
    "cmd_forget": "Удалить всё, что хранится обо мне",
    "start": (
        "Привет! Я перерисовываю фото в стиле другой картинки.\n\n"
        "1. Пришлите фото, которое нужно перерисовать.\n"
        "2. Затем пришлите картинку, стиль которой вам нравится.\n\n"
        "/settings — размер, сила стиля и цвета; /help — подробнее."
    ),
    "help": (
        "Я использую нейронный перенос стиля (Gatys et al.): содержание первого изображения "
        "рисуется текстурами и цветами второго.\n\n"
        "• Пришлите фото (или файл: JPEG, PNG, WebP, HEIC), затем картинку стиля. "
        "Можно прислать обе сразу альбомом.\n"
        "• Результат размером {size} px готов примерно за минуту; видно прогресс и превью.\n"
        "• Кнопки под результатом: Сильнее, Слабее, Другой стиль, Файл в полном качестве.\n"
        "• /settings: размер, сила стиля, сохранить цвета фото.\n"
        "• /cancel останавливает задачу; /forget удаляет всё о вас.\n\n"
        "Приватность: я храню только идентификаторы файлов Telegram и ваши настройки; изображения "
        "скачиваются, когда задача запускается, а результат в полном качестве удаляется через {hours} ч или по /forget."
    ),
    "ask_style": "Фото получено. Теперь пришлите картинку, стиль которой нужен, или выберите один из моих:",
    "ask_style_no_gallery": "Фото получено. Теперь пришлите картинку, стиль которой нужен.",
    "gallery_caption": "🖼 Мои стили: нажмите на название, чтобы выбрать.",
    "gallery_button": "{n}. {name}",
    "gallery_prev": "◀",
    "gallery_next": "▶",
    "gallery_picked": "Вы выбрали: {name}",
    "another_style_gallery": "Пришлите новую картинку стиля (фото сохранено) или выберите один из моих:",
    "result_style_credit": "{name} — {credit}",
    "ask_style_recent": "Фото получено. Теперь пришлите картинку стиля или выберите один из недавних:",
    # --- group chats (privacy mode: the bot sees only commands and replies to it) ---
    "group_start": (
        "Привет! В группе я работаю так:\n\n"
        "1. Ответьте на фото командой /style (или пришлите фото с подписью /style).\n"
        "2. Ответьте на моё сообщение картинкой, стиль которой нужен.\n\n"
        "Результат придёт ответом на ваше сообщение, и его кнопки работают только для вас. "
        "/settings — в личном чате со мной; подробнее: /help."
    ),
    "group_help": (
        "Перенос стиля в группе:\n\n"
        "• Ответьте на фото командой /style или пришлите фото с подписью /style.\n"
        "• Затем ответьте на моё сообщение картинкой стиля (фото или файлом).\n"
        "• Результат при {size} px занимает около минуты и приходит ответом на ваше сообщение; "
        "его кнопки (Сильнее, Слабее, Другой стиль, Файл в полном качестве) работают только для вас.\n"
        "• /cancel останавливает вашу задачу; /settings и /forget — в личном чате со мной.\n\n"
        "Результаты хранятся {hours} ч."
    ),
    "group_style_prompt": "Фото получено, {name}. Теперь ответьте на это сообщение картинкой, стиль которой нужен.",
    "group_style_howto": (
        "Ответьте на фото командой /style (или пришлите фото с подписью /style), "
        "затем ответьте на моё сообщение картинкой стиля."
    ),
    "group_send_picture": "Ответьте, пожалуйста, картинкой стиля (фото или файлом с изображением).",
    "group_settings_private": "Настройки личные: используйте /settings в личном чате со мной.",
    "not_your_buttons": "Эти кнопки принадлежат пользователю {name}.",
    "not_your_buttons_anon": "Эти кнопки принадлежат другому пользователю.",
    "group_forget_private": "/forget удаляет ваши данные только в личном чате со мной, поэтому здесь ничего не удалено. Откройте чат со мной и отправьте /forget там.",
    "recent_style_button": "🎨 Стиль {n}",
    "ask_content_first": "Сначала пришлите фото, которое нужно перерисовать (потом стиль).",
    "queued": "В очереди: позиция {position}. Я буду обновлять это сообщение.",
    "queued_next": "Вы следующий в очереди. Я буду обновлять это сообщение.",
    "queued_many": "В очереди: перед вами больше {ahead} задач. Я буду обновлять это сообщение.",
    "resumed": "Я перезапустился; ваша задача снова в очереди (позиция {position}).",
    "running": "Рисую… {percent}% · осталось около {eta}",
    "running_start": "Рисую… начинаю",
    "first_look": "Первый набросок, за секунду. Картина уже в работе…",
    "done": "Готово за {seconds} с.",
    "result_caption": "{width}×{height} px · стиль {strength} · цвета {colors}",
    "strength_weak": "слабый",
    "strength_normal": "обычный",
    "strength_strong": "сильный",
    "colors_kept": "исходные",
    "colors_style": "из стиля",
    "already_queued": "У вас уже есть задача в очереди. Сначала отмените её: /cancel.",
    "cancelled_job": "Задача отменена.",
    "cancelled_dialog": "Отменено. Пришлите /start или новое фото, когда захотите.",
    "nothing_to_cancel": "Отменять нечего. Пришлите фото, чтобы начать.",
    "job_cancelled_status": "Отменено.",
    "forgotten": "Удалил всё, что хранил о вас: настройки, недавние стили, задачи и результаты.",
    "rate_limited": "Лимит — {limit} задач в час. Попробуйте снова через {minutes} мин.",
    "rate_limited_size": (
        "Картинка {size} px считается как {cost} картинок по {default} px — это больше, чем осталось "
        "от вашего лимита на час. Выберите {default} px в /settings или попробуйте {size} px через {minutes} мин."
    ),
    "size_clamped": "{asked} px не помещается в память сервера: рисую в {size} px.",
    "failed": "Извините, при рисовании что-то пошло не так. Попробуйте ещё раз (/start).",
    "handler_failed": "Извините, у меня что-то сломалось. Попробуйте ещё раз.",
    "busy_try_later": "Сейчас я устраняю проблему у себя (хранилище) и не принимаю новые задачи. Попробуйте через несколько минут.",
    "trouble_retry": "Проблема у меня (хранилище) прервала вашу задачу. Она остаётся в очереди и выполнится, как только всё исправится; присылать заново не нужно.",
    "job_timed_out": "Извините, задача шла дольше {limit} и была остановлена. Попробуйте размер поменьше (/settings) или другую картинку.",
    "gave_up_crashes": "Извините, я отказался от вашей задачи: во время неё я перезапускался {times} раз, возможно, из-за неё. Попробуйте другую картинку или размер поменьше (/settings).",
    "bad_content_later": "Не удалось прочитать фото: {reason} Пришлите /start и другое фото.",
    "bad_style_later": "Не удалось прочитать картинку стиля: {reason} Пришлите другой стиль.",
    "text_instead_of_image": "Пришлите изображение (фото или файл с картинкой). Подробнее: /help.",
    "unknown_command": "Не знаю такой команды. Попробуйте /help.",
    "album_extra": "Из альбома я беру первые два изображения: первое — фото, второе — стиль.",
    "album_too_many": "В альбоме {count} изображений; я беру 2 (фото, затем стиль) или 3 (фото, затем два стиля для смешивания). Пришлите его заново, поменьше.",
    "bad_not_image": "Этот файл не похож на изображение. Пришлите JPEG, PNG, WebP или HEIC.",
    "bad_too_big_file": "Файл больше 20 МБ — Telegram не даёт ботам скачивать такие. Пришлите изображение поменьше.",
    "bad_corrupt": "Изображение повреждено или не полностью загружено. Пришлите другое.",
    "bad_too_many_pixels": "Изображение слишком большое ({megapixels} Мп). Пришлите не больше {limit} Мп.",
    "bad_too_small": "Изображение слишком маленькое ({width}×{height}). Нужно хотя бы {minimum} px с каждой стороны.",
    "bad_aspect": "Изображение слишком вытянутое ({width}×{height}). Соотношение сторон — не больше {ratio}:1.",
    "bad_download": "Не удалось скачать изображение из Telegram. Пришлите его ещё раз.",
    "bad_server_file": "Сервер Telegram дал негодный адрес этого изображения, и я не стал его скачивать. Пришлите его ещё раз.",
    "upstream_redirect": "Сервер Telegram вместо ответа отправил меня по другому адресу, а по таким адресам я не хожу. Попробуйте ещё раз через несколько минут.",
    "upstream_server": "У серверов Telegram сейчас неполадки (я пробовал несколько раз). Попробуйте ещё раз через несколько минут.",
    "upstream_timeout": "Telegram не ответил вовремя (я пробовал несколько раз). Попробуйте ещё раз через несколько минут.",
    "bad_over_budget": "Это изображение слишком большое, чтобы я мог его прочитать ({megapixels} Мп заняли бы около {needed} МБ памяти; мой предел для чтения изображений — {budget} МБ). Пришлите поменьше: до {always} Мп принимаются всегда.",
    "bad_busy": "Сейчас читается много больших изображений, и ваше ждало своей очереди {seconds} с. Пришлите его ещё раз через минуту.",
    "settings": "Настройки. Применяются к следующей задаче и видны под результатом.",
    "settings_size": "Размер: {size} px",
    "settings_strength": "Стиль: {strength}",
    "settings_colors_on": "Исходные цвета: вкл",
    "settings_colors_off": "Исходные цвета: выкл",
    "settings_saved": "Сохранено.",
    "btn_stronger": "Сильнее",
    "btn_weaker": "Слабее",
    "btn_another_style": "Другой стиль",
    "btn_full_quality": "Файл в полном качестве",
    "btn_timelapse": "🎞 Как это рисовалось",
    "btn_mix_with": "Смешать с другим стилем",
    "btn_mix_ratio": "{first}/{second}",
    "mix_ask": "Пришлите вторую картинку стиля или выберите её: я смешаю её со стилем этого результата (фото сохранено).",
    "mix_caption": "смесь стилей: {first}% первого · {second}% второго",
    "speed_painted": "Картина",
    "speed_quick": "Быстро (за секунду)",
    "quick_caption": "Быстро: набросок за секунду (полная картина: «Картина» в /settings)",
    "mix_same": "У этого результата уже такая смесь.",
    "another_style": "Пришлите новую картинку стиля (фото сохранено).",
    "full_quality_gone": "Этот файл уже не хранится (результаты хранятся {hours} ч). Запустите задачу заново.",
    "timelapse_gone": "Эта анимация уже не хранится (она хранится {hours} ч вместе с результатом).",
    "stale_button": "Эта кнопка устарела.",
    "strength_limit": "Стиль уже на пределе: {which}.",
    "strongest": "самый сильный",
    "weakest": "самый слабый",
}

_TABLES = {EN: _EN, RU: _RU}


def lang_of(language_code: str | None) -> str:
    """Telegram's ``language_code`` (``ru``, ``ru-RU``, ``en-GB``…) → a table we have."""
    if language_code and language_code.lower().split("-")[0] == RU:
        return RU
    return EN


def t(lang: str, key: str, **values: object) -> str:
    """The string ``key`` in ``lang`` with ``values`` filled in."""
    table = _TABLES.get(lang, _EN)
    template = table.get(key) or _EN[key]
    return template.format(**values) if values else template


def duration(lang: str, seconds: float) -> str:
    """A short, human ETA: ``45 s``, ``3 min`` (``45 с``, ``3 мин``)."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} {'с' if lang == RU else 's'}"
    minutes = (seconds + 30) // 60
    return f"{minutes} {'мин' if lang == RU else 'min'}"


def keys(lang: str) -> set[str]:
    """Keys present in a language table (for tests that check both are complete)."""
    return set(_TABLES[lang])
