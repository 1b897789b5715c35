CREATE TABLE "operations" (
	"id" uuid PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"resource_id" uuid NOT NULL,
	"project_id" text NOT NULL,
	"state" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 1 NOT NULL,
	"deadline_at" timestamp (6) with time zone NOT NULL,
	"last_error" text DEFAULT '' NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"msg_id" text NOT NULL,
	"payload" "bytea" NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "quota_limits" (
	"project_id" text NOT NULL,
	"resource" text NOT NULL,
	"hard_limit" integer NOT NULL,
	CONSTRAINT "quota_limits_project_id_resource_pk" PRIMARY KEY("project_id","resource")
);
--> statement-breakpoint
CREATE TABLE "quota_usages" (
	"project_id" text NOT NULL,
	"resource" text NOT NULL,
	"in_use" integer DEFAULT 0 NOT NULL,
	"updated_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "quota_usages_project_id_resource_pk" PRIMARY KEY("project_id","resource")
);
--> statement-breakpoint
CREATE TABLE "services" (
	"host" text PRIMARY KEY NOT NULL,
	"host_name" text NOT NULL,
	"backend" text NOT NULL,
	"availability_zone" text NOT NULL,
	"disabled" boolean DEFAULT false NOT NULL,
	"disabled_reason" text DEFAULT '' NOT NULL,
	"frozen" boolean DEFAULT false NOT NULL,
	"heartbeat_at" timestamp (6) with time zone NOT NULL,
	"capabilities" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "snapshots" (
	"id" uuid PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"user_id" text NOT NULL,
	"volume_id" uuid NOT NULL,
	"name" varchar(255) DEFAULT '' NOT NULL,
	"description" varchar(255) DEFAULT '' NOT NULL,
	"status" text NOT NULL,
	"status_reason" text DEFAULT '' NOT NULL,
	"progress" text DEFAULT '0%' NOT NULL,
	"volume_size_gb" integer NOT NULL,
	"volume_type" text DEFAULT '' NOT NULL,
	"encryption_key_id" text DEFAULT '' NOT NULL,
	"provider_location" text DEFAULT '' NOT NULL,
	"group_snapshot_id" text DEFAULT '' NOT NULL,
	"image_metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "volumes" (
	"id" uuid PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"user_id" text NOT NULL,
	"name" varchar(255) DEFAULT '' NOT NULL,
	"description" varchar(255) DEFAULT '' NOT NULL,
	"status" text NOT NULL,
	"status_reason" text DEFAULT '' NOT NULL,
	"size_gb" integer NOT NULL,
	"volume_type" text DEFAULT '' NOT NULL,
	"availability_zone" text NOT NULL,
	"bootable" boolean DEFAULT false NOT NULL,
	"image_metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"encryption_key_id" text DEFAULT '' NOT NULL,
	"host" text,
	"migration_status" text,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL,
	"created_at" timestamp (6) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (6) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "snapshots" ADD CONSTRAINT "snapshots_volume_id_volumes_id_fk" FOREIGN KEY ("volume_id") REFERENCES "public"."volumes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "operations_pending_deadline_idx" ON "operations" USING btree ("deadline_at") WHERE state = 'pending';--> statement-breakpoint
CREATE INDEX "snapshots_project_created_idx" ON "snapshots" USING btree ("project_id","created_at","id");--> statement-breakpoint
CREATE INDEX "snapshots_volume_idx" ON "snapshots" USING btree ("volume_id");--> statement-breakpoint
CREATE INDEX "volumes_project_created_idx" ON "volumes" USING btree ("project_id","created_at","id");